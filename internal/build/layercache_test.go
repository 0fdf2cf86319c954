package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/testbed"
)

// cachedSteps returns, for each RUN of the result's stages in order,
// whether it came from the layer cache.
func cachedSteps(res *Result) []bool {
	var out []bool
	for _, s := range res.Stages {
		for _, st := range s.Steps {
			if len(st.Instruction) >= 3 && st.Instruction[:3] == "RUN" {
				out = append(out, st.Cached)
			}
		}
	}
	return out
}

// TestLayerCache builds one Dockerfile several times with one layer cache:
// a RUN is reused when what it depends on is unchanged (a COPY of the same
// bytes with new mtimes included), run again when its input changed, and
// a cached layer applies to a root file system an earlier RUN of the
// stage made. The RUNs write random bytes: equal bytes mean not run.
func TestLayerCache(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	layers := filepath.Join(t.TempDir(), "layers")
	df := "FROM busybox\n" +
		"ARG V=1\n" +
		"COPY req.txt /req.txt\n" +
		"RUN head -c 16 /dev/urandom | od -x > /rand && cat /req.txt > /copy\n" +
		"COPY app.txt /app.txt\n" +
		"RUN --mount=type=bind,target=/ctx cp /ctx/app.txt /app3\n" +
		"RUN echo $V > /v && head -c 16 /dev/urandom | od -x > /rand2\n"
	build := func(req, app string, args map[string]string, opts ...Option) (*Result, map[string]string) {
		t.Helper()
		f := fixture{dockerfile: df, files: map[string]string{"req.txt": req, "app.txt": app},
			req: func(r *Request) { r.BuildArgs = args }}
		src := &memSource{images: map[string]v1.Image{"busybox": testbed.BusyboxImage(t)}}
		res, err := Build(context.Background(), f.request(t), append([]Option{WithImageSource(src), WithCacheDir(t.TempDir()), WithLayerCache(layers)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return res, flatten(t, res.Image)
	}
	digest := func(res *Result) v1.Hash {
		d, err := res.Image.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	eq := func(what string, got, want []bool) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: cached %v, want %v", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: cached %v, want %v", what, got, want)
				return
			}
		}
	}

	first, fs1 := build("r1\n", "a1\n", nil)
	eq("first build", cachedSteps(first), []bool{false, false, false})

	// Same bytes, new mtimes (a fresh checkout): the cacheable RUNs are
	// reused, the bind-mount RUN runs and gives the same layer, so the
	// last RUN is reused on top of a root file system.
	second, fs2 := build("r1\n", "a1\n", nil)
	eq("unchanged", cachedSteps(second), []bool{true, false, true})
	if fs2["rand"] != fs1["rand"] || fs2["rand2"] != fs1["rand2"] || fs2["app3"] != fs1["app3"] {
		t.Errorf("cached RUNs gave other files: %q %q, want %q %q", fs2["rand"], fs2["rand2"], fs1["rand"], fs1["rand2"])
	}
	if digest(second) != digest(first) {
		t.Errorf("unchanged rebuild: digest %s, want %s", digest(second), digest(first))
	}

	// The app changed: the first RUN is reused, the later ones run.
	third, fs3 := build("r1\n", "a2\n", nil)
	eq("app changed", cachedSteps(third), []bool{true, false, false})
	if fs3["rand"] != fs1["rand"] || fs3["rand2"] == fs1["rand2"] || fs3["app3"] != "file a2 00644 0:0" {
		t.Errorf("app changed: rand %q (want %q), rand2 rerun: %v, app3 %q", fs3["rand"], fs1["rand"], fs3["rand2"] != fs1["rand2"], fs3["app3"])
	}

	// The requirements changed: everything runs again.
	fourth, fs4 := build("r2\n", "a1\n", nil)
	eq("requirements changed", cachedSteps(fourth), []bool{false, false, false})
	if fs4["rand"] == fs1["rand"] || fs4["copy"] != "file r2 00644 0:0" {
		t.Errorf("requirements changed: rand reused or copy %q", fs4["copy"])
	}

	// A build arg the RUN sees: a miss from where it is used.
	fifth, fs5 := build("r1\n", "a1\n", map[string]string{"V": "2"})
	eq("build arg changed", cachedSteps(fifth), []bool{false, false, false})
	if fs5["v"] != "file 2 00644 0:0" {
		t.Errorf("build arg: /v = %q", fs5["v"])
	}

	// --no-cache: everything runs again.
	sixth, fs6 := build("r1\n", "a1\n", nil, WithoutCacheReuse())
	eq("no-cache", cachedSteps(sixth), []bool{false, false, false})
	if fs6["rand"] == fs1["rand"] {
		t.Error("no-cache reused the first RUN")
	}

	// --no-cache-filter of another stage: reused; of this one: run.
	seventh, _ := build("r1\n", "a1\n", nil, WithoutCacheReuse("builder"))
	eq("no-cache-filter builder", cachedSteps(seventh), []bool{true, false, true})
	eighth, fs8 := build("r1\n", "a1\n", nil, WithoutCacheReuse("0"))
	eq("no-cache-filter 0", cachedSteps(eighth), []bool{false, false, false})

	// What a no-cache build ran replaced the cache's entries (cache-to
	// only): the next build reuses the newest layers.
	ninth, fs9 := build("r1\n", "a1\n", nil)
	eq("after no-cache", cachedSteps(ninth), []bool{true, false, true})
	if fs9["rand"] != fs8["rand"] || fs9["rand"] == fs1["rand"] {
		t.Errorf("after no-cache: rand %q, want the no-cache build's %q", fs9["rand"], fs8["rand"])
	}

	ents, err := os.ReadDir(filepath.Join(layers, "keys"))
	if err != nil || len(ents) == 0 {
		t.Errorf("layer cache keys: %v, %v", ents, err)
	}
}

// memStore is a LayerStore in memory.
type memStore struct {
	mu     sync.Mutex
	layers map[string]v1.Layer
	gets   int
	fail   error
}

func (m *memStore) Get(_ context.Context, key string) (v1.Layer, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	if m.fail != nil {
		return nil, false, m.fail
	}
	l, ok := m.layers[key]
	return l, ok, nil
}

func (m *memStore) Put(_ context.Context, key string, l v1.Layer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.layers[key] = l
	return nil
}

// TestLayerStore: with no cache on the machine (a fresh CI runner), a
// layer store filled by an earlier build gives its RUN layers; read-only,
// nothing is stored; a failing store is logged and the build goes on.
func TestLayerStore(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	df := "FROM busybox\nCOPY a.txt /a.txt\nRUN head -c 16 /dev/urandom | od -x > /rand\n"
	store := &memStore{layers: map[string]v1.Layer{}}
	build := func(opts ...Option) (*Result, map[string]string) {
		t.Helper()
		f := fixture{dockerfile: df, files: map[string]string{"a.txt": "a\n"}}
		src := &memSource{images: map[string]v1.Image{"busybox": testbed.BusyboxImage(t)}}
		res, err := Build(context.Background(), f.request(t), append([]Option{WithImageSource(src), WithCacheDir(t.TempDir())}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return res, flatten(t, res.Image)
	}
	first, fs1 := build(WithLayerStore(store, false))
	if got := cachedSteps(first); len(got) != 1 || got[0] || len(store.layers) != 1 {
		t.Fatalf("first build: cached %v, %d layers stored, want a miss and one stored", got, len(store.layers))
	}
	second, fs2 := build(WithLayerStore(store, true))
	if got := cachedSteps(second); len(got) != 1 || !got[0] || fs2["rand"] != fs1["rand"] {
		t.Errorf("second build: cached %v, rand equal %v: want the stored layer", got, fs2["rand"] == fs1["rand"])
	}

	ro := &memStore{layers: map[string]v1.Layer{}}
	build(WithLayerStore(ro, true))
	if len(ro.layers) != 0 {
		t.Errorf("a read-only store got %d layers", len(ro.layers))
	}
	broken := &memStore{layers: map[string]v1.Layer{}, fail: errors.New("registry down")}
	if res, _ := build(WithLayerStore(broken, false)); cachedSteps(res)[0] {
		t.Error("a failing store gave a hit")
	}
}
