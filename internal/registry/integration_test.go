package registry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestRealRegistryAuthTLS pushes to the CNCF distribution registry with
// htpasswd and TLS.
func TestRealRegistryAuthTLS(t *testing.T) {
	t.Parallel()
	const user, password = "ship", "c0rrect-horse"
	reg := testbed.StartRegistry(t, testbed.WithHtpasswd(user, password), testbed.WithTLS())
	tests := []struct {
		name       string
		opts       func(t *testing.T) []Option
		secret     string // a wrong password that must not leak
		wantSource string
		wantErr    bool
	}{
		{name: "explicit right", wantSource: SourceExplicit,
			opts: func(*testing.T) []Option { return []Option{WithCredentials(reg.Host, user, password)} }},
		{name: "docker config right", wantSource: SourceDockerConfig,
			opts: func(t *testing.T) []Option {
				return []Option{WithDockerConfigDir(writeDockerConfig(t, map[string][2]string{reg.Host: {user, password}}, nil))}
			}},
		{name: "explicit wrong", wantSource: SourceExplicit, wantErr: true, secret: "wr0ng-explicit",
			opts: func(*testing.T) []Option { return []Option{WithCredentials(reg.Host, user, "wr0ng-explicit")} }},
		{name: "gitlab wrong", wantSource: SourceGitLab, wantErr: true, secret: "wr0ng-gitlab",
			opts: func(*testing.T) []Option {
				return []Option{WithEnv(envMap(map[string]string{"CI_REGISTRY": reg.Host, "CI_REGISTRY_USER": user, "CI_REGISTRY_PASSWORD": "wr0ng-gitlab"}))}
			}},
		{name: "docker config wrong", wantSource: SourceDockerConfig, wantErr: true, secret: "wr0ng-config",
			opts: func(t *testing.T) []Option {
				return []Option{WithDockerConfigDir(writeDockerConfig(t, map[string][2]string{reg.Host: {user, "wr0ng-config"}}, nil))}
			}},
		{name: "anonymous", wantSource: SourceAnonymous, wantErr: true,
			opts: func(*testing.T) []Option { return nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, append([]Option{WithTransport(reg.Transport())}, tc.opts(t)...)...)
			img := randomImage(t, 2)
			tag := reg.Ref(strings.ReplaceAll(tc.name, " ", "-") + ":1")
			got, err := c.Push(context.Background(), img, []string{tag, tag + "-again"})
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Push: %v", err)
				}
				pulled, err := c.Image(context.Background(), tag+"-again", v1.Platform{})
				if err != nil {
					t.Fatalf("Image: %v", err)
				}
				if d := digestOf(t, pulled); d != got || got != digestOf(t, img) {
					t.Fatalf("pulled %s, pushed %s, want %s", d, got, digestOf(t, img))
				}
				return
			}
			if err == nil {
				t.Fatal("push with wrong credentials succeeded")
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			var ae *AuthError
			if !errors.As(err, &ae) || ae.Source != tc.wantSource || ae.Registry != reg.Host {
				t.Fatalf("error %q, want an *AuthError for %s from %s", msg, reg.Host, tc.wantSource)
			}
			for _, s := range []string{password, tc.secret} {
				if s != "" && strings.Contains(msg, s) {
					t.Errorf("error leaks a password: %q", msg)
				}
			}
			if !strings.Contains(msg, "registry "+reg.Host) || !strings.Contains(msg, tc.wantSource) {
				t.Errorf("error %q does not name the registry and the source", msg)
			}
		})
	}
}

// countingProxy puts a recorder in front of a real registry.
func countingProxy(t *testing.T, reg *testbed.Registry) (string, *recorder) {
	t.Helper()
	u, err := url.Parse(reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{next: httputil.NewSingleHostReverseProxy(u)}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), rec
}

func isMount(q request) bool {
	return q.method == http.MethodPost && strings.Contains(q.query, "mount=") && strings.Contains(q.query, "from=")
}

// committed returns the digests of the blob uploads committed (PUT ?digest=).
func committed(rec *recorder) map[string]bool {
	out := map[string]bool{}
	for _, q := range rec.all() {
		if q.method == http.MethodPut && strings.Contains(q.path, "/blobs/uploads/") {
			v, _ := url.ParseQuery(q.query)
			out[v.Get("digest")] = true
		}
	}
	return out
}

// TestCrossRepositoryMount checks against the real registry that blobs
// already in another repository of the registry are mounted, not uploaded.
func TestCrossRepositoryMount(t *testing.T) {
	t.Parallel()
	reg := testbed.StartRegistry(t)
	host, rec := countingProxy(t, reg)
	ctx := context.Background()
	newLayer := func(t *testing.T) v1.Layer {
		l, err := random.Layer(1024, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	t.Run("base image layers resolved by Image", func(t *testing.T) {
		base := randomImage(t, 3)
		pushDirect(t, host+"/mount1/base:1", base)
		rec.reset()
		c := newClient(t) // a fresh client knows nothing but what Image tells it
		got, err := c.Image(ctx, host+"/mount1/base:1", v1.Platform{})
		if err != nil {
			t.Fatal(err)
		}
		added := newLayer(t)
		img, err := mutate.AppendLayers(got, added)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Push(ctx, img, []string{host + "/mount1/app:1"}); err != nil {
			t.Fatal(err)
		}
		checkMounts(t, rec, base, img, added)
	})

	t.Run("layers of an earlier push", func(t *testing.T) {
		c := newClient(t)
		first := randomImage(t, 2)
		if _, err := c.Push(ctx, first, []string{host + "/mount2/one:1"}); err != nil {
			t.Fatal(err)
		}
		rec.reset()
		added := newLayer(t)
		img, err := mutate.AppendLayers(first, added)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Push(ctx, img, []string{host + "/mount2/two:1"}); err != nil {
			t.Fatal(err)
		}
		checkMounts(t, rec, first, img, added)
	})

	t.Run("tags in two repositories of one push", func(t *testing.T) {
		c := newClient(t)
		img := randomImage(t, 2)
		rec.reset()
		if _, err := c.Push(ctx, img, []string{host + "/mount3/a:1", host + "/mount3/b:1"}); err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		if n := rec.count(isMount); n < len(layers) {
			t.Errorf("%d mounts, want at least %d (the second repository mounts the first's layers)", n, len(layers))
		}
		if n := len(committed(rec)); n != len(layers)+1 {
			t.Errorf("%d blob uploads committed, want %d (each blob once)", n, len(layers)+1)
		}
	})
}

// checkMounts asserts that base's layers were mounted into the pushed image
// and that only the added layer and the new config were uploaded, and that
// no base layer was downloaded.
func checkMounts(t *testing.T, rec *recorder, base, img v1.Image, added v1.Layer) {
	t.Helper()
	baseLayers, _ := base.Layers()
	mounted := map[string]bool{}
	for _, q := range rec.all() {
		if isMount(q) {
			v, _ := url.ParseQuery(q.query)
			mounted[v.Get("mount")] = true
		}
	}
	for _, l := range baseLayers {
		d, _ := l.Digest()
		if !mounted[d.String()] {
			t.Errorf("base layer %s was not mounted", d)
		}
		if rec.count(func(q request) bool {
			return q.method == http.MethodGet && strings.HasSuffix(q.path, "/blobs/"+d.String())
		}) > 0 {
			t.Errorf("base layer %s was downloaded", d)
		}
	}
	addedDigest, _ := added.Digest()
	cfg, _ := img.ConfigName()
	want := map[string]bool{addedDigest.String(): true, cfg.String(): true}
	got := committed(rec)
	for d := range got {
		if !want[d] {
			t.Errorf("blob %s was uploaded, want it mounted", d)
		}
	}
	if len(got) != len(want) {
		t.Errorf("uploaded %v, want %v", got, want)
	}
}
