package registry

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/intesys/ship-action/internal/layer"
)

func TestPushTagsShareOneDigest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tags []string // "HOST" is replaced by the test registry
	}{
		{name: "one tag", tags: []string{"HOST/app:1"}},
		{name: "two tags one repository", tags: []string{"HOST/app:1", "HOST/app:latest"}},
		{name: "duplicate tag", tags: []string{"HOST/app:1", "HOST/app:1"}},
		{name: "two repositories", tags: []string{"HOST/app:1", "HOST/other/app:2", "HOST/app:latest"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host, rec := memRegistry(t, nil)
			c := newClient(t)
			img := randomImage(t, 2)
			var tags []string
			for _, s := range tc.tags {
				tags = append(tags, strings.ReplaceAll(s, "HOST", host))
			}
			got, err := c.Push(context.Background(), img, tags)
			if err != nil {
				t.Fatalf("Push: %v", err)
			}
			if want := digestOf(t, img); got != want {
				t.Fatalf("Push digest = %s, want %s", got, want)
			}
			for _, tag := range tags {
				ref, err := name.ParseReference(tag)
				if err != nil {
					t.Fatal(err)
				}
				desc, err := remote.Head(ref)
				if err != nil {
					t.Fatalf("head %s: %v", tag, err)
				}
				if desc.Digest != got {
					t.Errorf("%s points at %s, want %s", tag, desc.Digest, got)
				}
			}
			// Blobs are uploaded once per repository at most: the
			// in-memory registry shares blobs, so the second repository
			// finds them.
			layers, _ := img.Layers()
			if n := rec.count(func(q request) bool { return q.method == http.MethodPost && strings.Contains(q.path, "/blobs/uploads") }); n > len(layers)+1 {
				t.Errorf("%d blob uploads started, want at most %d", n, len(layers)+1)
			}
		})
	}
}

func TestPushSkipsExistingBlobs(t *testing.T) {
	t.Parallel()
	host, rec := memRegistry(t, nil)
	c := newClient(t)
	img := randomImage(t, 3)
	ctx := context.Background()
	if _, err := c.Push(ctx, img, []string{host + "/app:1"}); err != nil {
		t.Fatal(err)
	}
	if n := rec.count(isBlobWrite); n == 0 {
		t.Fatalf("first push wrote no blobs: the counter is broken")
	}
	rec.reset()
	// Same blobs, new image on top: only the new layer and config are sent.
	layer, err := random.Layer(512, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img2, err := mutate.AppendLayers(img, layer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(ctx, img2, []string{host + "/app:2"}); err != nil {
		t.Fatal(err)
	}
	newDigest, _ := layer.Digest()
	cfg, _ := img2.ConfigName()
	for _, q := range rec.all() {
		if !isBlobWrite(q) || q.method != http.MethodPut {
			continue
		}
		if !strings.Contains(q.query, url.QueryEscape(newDigest.String())) && !strings.Contains(q.query, url.QueryEscape(cfg.String())) {
			t.Errorf("unexpected blob write %s %s?%s", q.method, q.path, q.query)
		}
	}
	if n := rec.count(func(q request) bool { return q.method == http.MethodPost && strings.Contains(q.path, "/blobs/uploads") }); n != 2 {
		t.Errorf("second push started %d uploads, want 2 (new layer and config)", n)
	}
}

func TestPushRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		failures int32
		wantErr  bool
	}{
		{name: "two 503 then success", failures: 2},
		{name: "always 503", failures: 1000, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var failed atomic.Int32
			failPuts := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && failed.Load() < tc.failures {
						failed.Add(1)
						http.Error(w, "busy", http.StatusServiceUnavailable)
						return
					}
					next.ServeHTTP(w, r)
				})
			}
			host, rec := memRegistry(t, failPuts)
			c := newClient(t)
			img := randomImage(t, 1)
			tags := []string{host + "/app:1", host + "/app:2"}
			_, err := c.Push(context.Background(), img, tags)
			puts := rec.count(func(q request) bool { return q.method == http.MethodPut && strings.Contains(q.path, "/manifests/") })
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Push: %v", err)
				}
				if puts != 4 { // 2 failures + 1 per tag
					t.Errorf("%d manifest PUTs, want 4", puts)
				}
				return
			}
			var pe *PushError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want *PushError", err, err)
			}
			if len(pe.Written) != 0 || strings.Join(pe.NotWritten, ",") != strings.Join(tags, ",") {
				t.Errorf("written %v, not written %v; want none and %v", pe.Written, pe.NotWritten, tags)
			}
			if puts < int(fastBackoff.Steps) {
				t.Errorf("%d manifest PUTs, want at least %d tries", puts, fastBackoff.Steps)
			}
			if !strings.Contains(err.Error(), "tags not written: "+tags[0]) {
				t.Errorf("error %q does not list the tags not written", err)
			}
		})
	}
}

func TestPushReportsPartialTags(t *testing.T) {
	t.Parallel()
	// The second tag's manifest PUT is refused for good.
	refuse := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/bad") {
				http.Error(w, `{"errors":[{"code":"TAG_INVALID","message":"no"}]}`, http.StatusBadRequest)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	host, _ := memRegistry(t, refuse)
	c := newClient(t)
	tags := []string{host + "/app:good", host + "/app:bad", host + "/app:after"}
	_, err := c.Push(context.Background(), randomImage(t, 1), tags)
	var pe *PushError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v, want *PushError", err)
	}
	if got := strings.Join(pe.Written, ","); got != tags[0] {
		t.Errorf("Written = %s, want %s", got, tags[0])
	}
	if got, want := strings.Join(pe.NotWritten, ","), tags[1]+","+tags[2]; got != want {
		t.Errorf("NotWritten = %s, want %s", got, want)
	}
}

func TestImageDoesNotFetchLayers(t *testing.T) {
	t.Parallel()
	host, rec := memRegistry(t, nil)
	img := randomImage(t, 3)
	pushDirect(t, host+"/base:1", img)
	rec.reset()
	c := newClient(t)
	got, err := c.Image(context.Background(), host+"/base:1", v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := got.ConfigFile(); err != nil {
		t.Fatal(err)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if _, err := l.Digest(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Size(); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := got.ConfigName()
	blobGets := func(q request) bool {
		return q.method == http.MethodGet && strings.Contains(q.path, "/blobs/") && !strings.HasSuffix(q.path, cfg.String())
	}
	if n := rec.count(blobGets); n != 0 {
		t.Fatalf("Image fetched %d layer blobs, want 0", n)
	}
	// The counter works: reading a layer fetches it.
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if n := rec.count(blobGets); n != 1 {
		t.Fatalf("reading a layer made %d blob GETs, want 1", n)
	}
}

func TestImagePlatform(t *testing.T) {
	t.Parallel()
	host, _ := memRegistry(t, nil)
	amd, arm := randomImage(t, 1), randomImage(t, 1)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	ref, err := name.ParseReference(host + "/multi:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	single := randomImage(t, 1)
	pushDirect(t, host+"/single:1", single)

	tests := []struct {
		name     string
		ref      string
		platform v1.Platform
		want     v1.Image
		wantErr  string
	}{
		{name: "amd64 from index", ref: "multi:1", platform: v1.Platform{OS: "linux", Architecture: "amd64"}, want: amd},
		{name: "arm64 from index", ref: "multi:1", platform: v1.Platform{OS: "linux", Architecture: "arm64"}, want: arm},
		{name: "arm64/v8 from index", ref: "multi:1", platform: v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, want: arm},
		{name: "missing platform", ref: "multi:1", platform: v1.Platform{OS: "linux", Architecture: "s390x"}, wantErr: "no linux/s390x variant (the index has: linux/amd64, linux/arm64/v8)"},
		{name: "single manifest", ref: "single:1", platform: v1.Platform{OS: "linux", Architecture: "amd64"}, want: single},
		{name: "by digest", ref: "single@" + digestOf(t, single).String(), want: single},
		{name: "not found", ref: "nothere:1", wantErr: "image " + host + "/nothere:1 not found in registry " + host},
	}
	c := newClient(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := c.Image(context.Background(), host+"/"+tc.ref, tc.platform)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error has several lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g, w := digestOf(t, got), digestOf(t, tc.want); g != w {
				t.Errorf("digest %s, want %s", g, w)
			}
		})
	}
}

func TestImageUnreachable(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	// A port nobody listens on.
	srv := httptest.NewServer(http.NotFoundHandler())
	host := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	_, err := c.Image(context.Background(), host+"/app:1", v1.Platform{})
	if err == nil {
		t.Fatal("no error from a closed port")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "reaching registry "+host+": ") || !strings.Contains(msg, "connection refused") || strings.Contains(msg, "\n") {
		t.Errorf("error %q, want a one-line reaching registry %s: ... connection refused", msg, host)
	}
}

func TestMirrors(t *testing.T) {
	t.Parallel()
	img := randomImage(t, 1)
	other := randomImage(t, 1)
	tests := []struct {
		name      string
		mirrors   int    // how many mirrors
		hasImage  []bool // per mirror
		wantFrom  int    // index of the mirror that serves it; -1: docker.io
		hubOnline bool
		wantErr   string
	}{
		{name: "first mirror", mirrors: 2, hasImage: []bool{true, true}, wantFrom: 0, hubOnline: true},
		{name: "second mirror after a miss", mirrors: 2, hasImage: []bool{false, true}, wantFrom: 1, hubOnline: true},
		{name: "docker.io after the mirrors", mirrors: 1, hasImage: []bool{false}, wantFrom: -1, hubOnline: true},
		{name: "nowhere", mirrors: 1, hasImage: []bool{false}, wantFrom: -1, wantErr: "not found in registry index.docker.io (mirrors tried first: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mirrors []string
			var recs []*recorder
			for i := 0; i < tc.mirrors; i++ {
				h, rec := memRegistry(t, nil)
				if tc.hasImage[i] {
					pushDirect(t, h+"/library/busybox:1", img)
				} else {
					pushDirect(t, h+"/library/other:1", other)
				}
				rec.reset()
				mirrors = append(mirrors, h)
				recs = append(recs, rec)
			}
			hub, hubRec := memRegistry(t, nil)
			if tc.hubOnline {
				pushDirect(t, hub+"/library/busybox:1", img)
			}
			hubRec.reset()
			c := newClient(t, WithMirrors(mirrors...), WithTransport(&rewriteTransport{host: hub, hosts: map[string]bool{"index.docker.io": true}}))
			got, err := c.Image(context.Background(), "busybox:1", v1.Platform{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if digestOf(t, got) != digestOf(t, img) {
				t.Fatal("wrong image")
			}
			manifestGets := func(q request) bool { return strings.Contains(q.path, "/library/busybox/manifests/") }
			for i, rec := range recs {
				asked := rec.count(manifestGets) > 0
				if wantAsked := tc.wantFrom == -1 || i <= tc.wantFrom; asked != wantAsked {
					t.Errorf("mirror %d asked = %v, want %v", i, asked, wantAsked)
				}
			}
			if asked := hubRec.count(manifestGets) > 0; asked != (tc.wantFrom == -1) {
				t.Errorf("docker.io asked = %v, want %v", asked, tc.wantFrom == -1)
			}
		})
	}
}

func TestInsecureOnlyForNamedHosts(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(ggcrregistry.New(ggcrregistry.Logger(discardLogger())))
	srv.Config.ErrorLog = discardLogger()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	img := randomImage(t, 1)
	ref, _ := name.ParseReference(host + "/app:1")
	if err := remote.Write(ref, img, remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		insecure []string
		wantErr  string
	}{
		{name: "named with port", insecure: []string{host}},
		{name: "named without port", insecure: []string{"127.0.0.1"}},
		{name: "not named", wantErr: "TLS certificate"},
		{name: "another host named", insecure: []string{"127.0.0.2", "127.0.0.1:1"}, wantErr: "TLS certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, WithInsecure(tc.insecure...))
			got, err := c.Image(context.Background(), host+"/app:1", v1.Platform{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), host) {
					t.Fatalf("error %v, want one naming %s and containing %q", err, host, tc.wantErr)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if digestOf(t, got) != digestOf(t, img) {
				t.Fatal("wrong image")
			}
			// Push goes through the same per-host transport.
			if _, err := c.Push(context.Background(), img, []string{host + "/app:2"}); err != nil {
				t.Fatalf("push: %v", err)
			}
		})
	}
}

func TestInsecurePlainHTTP(t *testing.T) {
	t.Parallel()
	host, _ := memRegistry(t, nil)
	img := randomImage(t, 1)
	pushDirect(t, host+"/app:1", img)
	// Every connection, whatever the name, reaches the plain-HTTP registry.
	dialer := &net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, host)
	}}
	tests := []struct {
		name     string
		insecure []string
		wantErr  bool
	}{
		{name: "named", insecure: []string{"plain.example:5000"}},
		{name: "named without port", insecure: []string{"plain.example"}},
		{name: "not named", wantErr: true},
		{name: "other host named", insecure: []string{"other.example:5000"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, WithTransport(tr), WithInsecure(tc.insecure...))
			got, err := c.Image(context.Background(), "plain.example:5000/app:1", v1.Platform{})
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "reaching registry plain.example:5000: the registry answers plain HTTP") {
					t.Fatalf("error %v, want one naming plain.example:5000 and plain HTTP", err)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if digestOf(t, got) != digestOf(t, img) {
				t.Fatal("wrong image")
			}
		})
	}
}

// TestUploadLayerAheadOfPush: a layer uploaded with UploadLayer is not
// sent again by Push.
func TestUploadLayerAheadOfPush(t *testing.T) {
	t.Parallel()
	host, rec := memRegistry(t, nil)
	c := newClient(t)
	img := randomImage(t, 2)
	ctx := context.Background()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if err := c.UploadLayer(ctx, host+"/app:1", l); err != nil {
			t.Fatal(err)
		}
	}
	if n := rec.count(func(q request) bool { return q.method == http.MethodPost && strings.Contains(q.path, "/blobs/uploads") }); n != 2 {
		t.Fatalf("UploadLayer started %d uploads, want 2", n)
	}
	rec.reset()
	if _, err := c.Push(ctx, img, []string{host + "/app:1"}); err != nil {
		t.Fatal(err)
	}
	if n := rec.count(func(q request) bool { return q.method == http.MethodPost && strings.Contains(q.path, "/blobs/uploads") }); n != 1 {
		t.Errorf("push after UploadLayer started %d uploads, want 1 (the config)", n)
	}
	if err := c.UploadLayer(ctx, "not a tag!", layers[0]); err == nil {
		t.Error("UploadLayer accepted a bad tag")
	}
}

// TestUploadLayerStreamed: a layer uploaded while it is written
// (layer.WithStream) is committed with its final digest, and Push does
// not send it again.
func TestUploadLayerStreamed(t *testing.T) {
	t.Parallel()
	host, rec := memRegistry(t, nil)
	c := newClient(t)
	ctx := context.Background()
	body := strings.Repeat("streamed layer content ", 100000)
	entries := []layer.Entry{{
		Header: &tar.Header{Typeflag: tar.TypeReg, Name: "f", Size: int64(len(body)), Mode: 0o644},
		Open:   func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil },
	}}
	done := make(chan error, 1)
	l, err := layer.New(ctx, entries, layer.WithStream(func(s v1.Layer) {
		go func() { done <- c.UploadLayer(ctx, host+"/app:1", s) }()
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("streamed upload: %v", err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	rec.reset()
	if _, err := c.Push(ctx, img, []string{host + "/app:1"}); err != nil {
		t.Fatal(err)
	}
	if n := rec.count(func(q request) bool { return q.method == http.MethodPost && strings.Contains(q.path, "/blobs/uploads") }); n != 1 {
		t.Errorf("push after a streamed upload started %d uploads, want 1 (the config)", n)
	}
}
