package registry

import (
	"archive/tar"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/intesys/ship-action/internal/layer"
	"github.com/intesys/ship-action/internal/rootfs"
	"github.com/intesys/ship-action/internal/testbed"
)

const testKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func fileLayer(t *testing.T, body string) v1.Layer {
	t.Helper()
	l, err := layer.New(context.Background(), []layer.Entry{{
		Header: &tar.Header{Typeflag: tar.TypeReg, Name: "f", Size: int64(len(body)), Mode: 0o644},
		Open:   func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLayerCacheRoundTrip stores a layer in a repository of the CNCF
// distribution registry and reads it back with another client (another
// machine): same digests, same content, and a miss for an unknown key.
func TestLayerCacheRoundTrip(t *testing.T) {
	t.Parallel()
	reg := testbed.StartRegistry(t)
	ctx := context.Background()
	l := fileLayer(t, "cached layer\n")
	lc, err := newClient(t, WithInsecure(reg.Host)).LayerCache(reg.Ref("app/cache"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := lc.Get(ctx, testKey); ok || err != nil {
		t.Fatalf("empty cache: ok %v, err %v", ok, err)
	}
	if err := lc.Put(ctx, testKey, l); err != nil {
		t.Fatalf("Put: %v", err)
	}
	other, err := newClient(t, WithInsecure(reg.Host)).LayerCache(reg.Ref("app/cache"))
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := other.Get(ctx, testKey)
	if err != nil || !ok {
		t.Fatalf("Get after Put: ok %v, err %v", ok, err)
	}
	for _, pair := range [][2]func() (v1.Hash, error){{l.Digest, got.Digest}, {l.DiffID, got.DiffID}} {
		a, _ := pair[0]()
		b, _ := pair[1]()
		if a != b {
			t.Errorf("cached layer hash %s, want %s", b, a)
		}
	}
	if top := rootfs.TopLevelNames(got); !slices.Equal(top, []string{"f"}) {
		t.Errorf("cached layer top-level names %q, want [f]", top)
	}
	rc, err := got.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(tr); string(b) != "cached layer\n" {
		t.Errorf("cached layer content %q", b)
	}
	if _, _, err := other.Get(ctx, "not-a-key"); err == nil {
		t.Error("Get accepted a key that is no hex SHA-256")
	}
}

// countingTransport counts the requests it forwards by method and path.
type countingTransport struct {
	mu   sync.Mutex
	reqs []string // "METHOD path?query"
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) count(f func(string) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.reqs {
		if f(r) {
			n++
		}
	}
	return n
}

// TestLayerCacheHitIsMounted: pushing an image with a cache hit's layer to
// another repository of the registry (the CNCF distribution registry,
// which keeps blobs per repository) mounts the blob: it is not uploaded
// again, and the cache lookup read no blob.
func TestLayerCacheHitIsMounted(t *testing.T) {
	t.Parallel()
	reg := testbed.StartRegistry(t)
	ctx := context.Background()
	lc, err := newClient(t, WithInsecure(reg.Host)).LayerCache(reg.Ref("app/cache"))
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.Put(ctx, testKey, fileLayer(t, strings.Repeat("big layer ", 10000))); err != nil {
		t.Fatal(err)
	}
	tr := &countingTransport{}
	c := newClient(t, WithPushTags(reg.Ref("app:1")), WithTransport(tr)) // loopback: plain HTTP without WithInsecure, which would bypass tr
	lc2, err := c.LayerCache(reg.Ref("app/cache"))
	if err != nil {
		t.Fatal(err)
	}
	hit, ok, err := lc2.Get(ctx, testKey)
	if err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if n := tr.count(func(r string) bool { return strings.Contains(r, "/blobs/") }); n != 0 {
		t.Errorf("the lookup made %d blob requests, want none", n)
	}
	img, err := mutate.AppendLayers(empty.Image, hit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(ctx, img, []string{reg.Ref("app:1")}); err != nil {
		t.Fatal(err)
	}
	mounts := tr.count(func(r string) bool { return strings.HasPrefix(r, "POST ") && strings.Contains(r, "mount=") })
	uploads := tr.count(func(r string) bool { return strings.HasPrefix(r, "PUT /v2/app/blobs/uploads/") })
	if mounts != 1 || uploads != 1 {
		t.Errorf("push: %d mounts (want 1, the cached layer), %d blob uploads (want 1, the config):\n%s", mounts, uploads, strings.Join(tr.reqs, "\n"))
	}
}
