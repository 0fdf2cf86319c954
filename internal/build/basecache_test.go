package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/intesys/ship-action/internal/rootfs"
	"github.com/intesys/ship-action/internal/testbed"
)

// countedImage counts reads of the content of img's layers, per layer.
type countedImage struct {
	v1.Image
	reads []*atomic.Int64
}

func newCountedImage(img v1.Image) *countedImage {
	layers, err := img.Layers()
	if err != nil {
		panic(err)
	}
	c := &countedImage{Image: img}
	for range layers {
		c.reads = append(c.reads, &atomic.Int64{})
	}
	return c
}

func (c *countedImage) Layers() ([]v1.Layer, error) {
	layers, err := c.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(layers))
	for i, l := range layers {
		out[i] = countingLayer{Layer: l, reads: c.reads[i]}
	}
	return out, nil
}

func (c *countedImage) total() int64 {
	var n int64
	for _, r := range c.reads {
		n += r.Load()
	}
	return n
}

// treeSummary describes every entry under dir: type, mode, owner, size,
// modification time, content hash or link target, xattrs, and which
// entries are hardlinks of each other.
func treeSummary(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[[2]uint64]string{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fmt.Sprintf("%o %d:%d mtime=%d", st.Mode, st.Uid, st.Gid, st.Mtim.Nano())
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			s += fmt.Sprintf(" size=%d sha=%s", st.Size, hex.EncodeToString(sum[:8]))
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			s += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			s += fmt.Sprintf(" dev=%d", st.Rdev)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
			id := [2]uint64{st.Dev, st.Ino}
			if first, ok := inodes[id]; ok {
				s += " link=" + first
			} else {
				inodes[id] = rel
			}
		}
		if sz, err := unix.Llistxattr(p, nil); err == nil && sz > 0 {
			buf := make([]byte, sz)
			sz, _ = unix.Llistxattr(p, buf)
			names := strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00")
			slices.Sort(names)
			for _, n := range names {
				v := make([]byte, 256)
				vn, _ := unix.Lgetxattr(p, n, v)
				s += fmt.Sprintf(" %s=%q", n, v[:max(vn, 0)])
			}
		}
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffSummaries(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q != %q", k, v, b[k]))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("%s: only in the second", k))
		}
	}
	slices.Sort(d)
	return d
}

func TestCopyTree(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	src := t.TempDir()
	old := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	mk := func(name string, mode os.FileMode, body string) {
		t.Helper()
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"a", "a/b", "tmp", "secret"} {
		if err := os.Mkdir(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk("a/b/file", 0o644, "hello")
	mk("a/suid", 0o755, "suid")
	if err := os.Chmod(filepath.Join(src, "a/suid"), 0o755|os.ModeSetuid|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	mk("a/owned", 0o640, "owned")
	if err := os.Lchown(filepath.Join(src, "a/owned"), 123, 456); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "secret"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "a/b/file"), filepath.Join(src, "a/hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/nowhere", filepath.Join(src, "a/abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b", filepath.Join(src, "a/dir-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(src, "a/dir-link"), 7, 8); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(src, "a/fifo"), 0o620); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(src, "a/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Logf("no device node: %v", err)
	}
	xattrs := unix.Lsetxattr(filepath.Join(src, "a/b/file"), "user.ship", []byte("v"), 0) == nil
	// A sparse file: 64 MiB with 5 bytes of data in the middle.
	sparse := filepath.Join(src, "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("data!"), 32<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Times last: on every entry, directories included.
	err = filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := treeSummary(t, src)

	dst := filepath.Join(t.TempDir(), "dst")
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	got := treeSummary(t, dst)
	if d := diffSummaries(want, got); len(d) > 0 {
		t.Errorf("copy differs:\n%s", strings.Join(d, "\n"))
	}
	if xattrs && !strings.Contains(got["a/b/file"], `user.ship="v"`) {
		t.Errorf("xattr not copied: %s", got["a/b/file"])
	}
	if !strings.Contains(got["a/hard"], "link=a/b/file") {
		t.Errorf("hardlink not kept: %s", got["a/hard"])
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dst, "sparse"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 1<<20 {
		t.Errorf("sparse file takes %d bytes on disk", st.Blocks*512)
	}

	// The copy is independent: writing it leaves the source as it was.
	if err := os.WriteFile(filepath.Join(dst, "a/b/file"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dst, "a")); err != nil {
		t.Fatal(err)
	}
	if d := diffSummaries(want, treeSummary(t, src)); len(d) > 0 {
		t.Errorf("source changed by writes to the copy:\n%s", strings.Join(d, "\n"))
	}

	// A cancelled copy stops.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dst2 := t.TempDir()
	if err := copyTree(ctx, src, dst2); err == nil {
		t.Error("cancelled copy succeeded")
	}
}

func TestChainIDs(t *testing.T) {
	t.Parallel()
	a := tarLayer(t, []tarFile{{name: "a", body: "a"}})
	b := tarLayer(t, []tarFile{{name: "b", body: "b"}})
	da, _ := a.DiffID()
	db, _ := b.DiffID()
	sum := sha256.Sum256([]byte(da.String() + " " + db.String()))
	tests := []struct {
		name   string
		layers []v1.Layer
		want   []string
	}{
		{"one layer is its diff ID", []v1.Layer{a}, []string{da.Hex}},
		{"two layers", []v1.Layer{a, b}, []string{da.Hex, hex.EncodeToString(sum[:])}},
		{"order matters", []v1.Layer{b, a}, []string{db.Hex, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ids, err := chainIDs(tt.layers)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tt.want {
				if want == "" {
					if ids[i].Hex == hex.EncodeToString(sum[:]) {
						t.Errorf("chain %d does not depend on the order", i)
					}
					continue
				}
				if ids[i].Hex != want {
					t.Errorf("chain %d = %s, want %s", i, ids[i].Hex, want)
				}
			}
		})
	}
}

// cachedBuild builds df on img ("busybox") with cache as cache dir.
func cachedBuild(t *testing.T, cache, df string, img v1.Image, opts ...Option) (*Result, error) {
	t.Helper()
	res, _, err := cachedBuildLogged(t, cache, df, img, opts...)
	return res, err
}

// cachedBuildLogged is cachedBuild that also returns the build's debug log.
func cachedBuildLogged(t *testing.T, cache, df string, img v1.Image, opts ...Option) (*Result, string, error) {
	t.Helper()
	src := &memSource{images: map[string]v1.Image{"busybox": img}}
	var logs strings.Builder
	var mu sync.Mutex
	opts = append([]Option{WithImageSource(src), WithCacheDir(cache),
		WithLogger(slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	res, err := Build(context.Background(), fixture{dockerfile: df}.request(t), opts...)
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		return nil, logs.String(), fmt.Errorf("%w\n%s", err, logs.String())
	}
	return res, logs.String(), nil
}

// inRootModes runs test in parallel subtests, one per root mode.
func inRootModes(t *testing.T, test func(t *testing.T, opts []Option)) {
	t.Parallel()
	requireRoot(t)
	for _, m := range rootModes() {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			test(t, m.opts)
		})
	}
}

// rootModes are the two ways a stage's root file system is made from the
// cache: an overlay mount over the entry (where this process may mount;
// the entry made on the base's first use, see TestBaseEntryOnSecondUse),
// or a private copy of it (baseFill makes the entry on a miss).
func rootModes() []struct {
	name string
	opts []Option
} {
	return []struct {
		name string
		opts []Option
	}{{"overlay", []Option{withBaseEntryOnFirstUse()}}, {"copy", []Option{WithoutOverlay()}}}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// cacheEntries lists the complete entries of the base root file system
// cache under cache.
func cacheEntries(t *testing.T, cache string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(cache, rootfsCacheDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), "tmp-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestBaseCacheSecondBuild(t *testing.T) { inRootModes(t, testBaseCacheSecondBuild) }

func testBaseCacheSecondBuild(t *testing.T, opts []Option) {
	base := testbed.BusyboxImage(t, testbed.WithFile("/etc/motd", "original\n"))
	cache := t.TempDir()

	// The first build extracts the base into the cache, then runs a RUN
	// that changes, deletes and re-owns files of the base.
	first := newCountedImage(base)
	_, logs, err := cachedBuildLogged(t, cache, "FROM busybox\n"+
		"RUN echo more >> /etc/motd && rm /bin/ls && chmod 600 /etc/group && chown 5:5 /etc/passwd && "+
		"rm -rf /home/app && echo x > /bin/busybox.new && mv /bin/busybox.new /bin/busybox\n", first, opts...)
	if err != nil {
		t.Fatalf("first build: %v", err)
	}
	if n := first.total(); n != 1 {
		t.Fatalf("first build read the base layer %d times, want 1", n)
	}
	// Without overlay the stage is extracted straight from the image and
	// the entry from the spooled layer, not the stage copied from the entry.
	spooled := strings.Contains(logs, "base root file system stored in the cache")
	if copyMode := !strings.Contains(logs, "RUN works on overlay mounts"); spooled != copyMode {
		t.Errorf("entry made from a spooled layer: %v, want %v; log:\n%s", spooled, copyMode, logs)
	}
	entries := cacheEntries(t, cache)
	layers, _ := base.Layers()
	ids, err := chainIDs(layers)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{ids[len(ids)-1].Hex}; !slices.Equal(entries, want) {
		t.Fatalf("cache entries = %v, want %v", entries, want)
	}

	// The cached copy is the base, untouched by the RUN.
	fresh := t.TempDir()
	if _, err := rootfs.Extract(context.Background(), fresh, layers); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(fresh, 0o755); err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(cache, rootfsCacheDir, entries[0], entryRoot)
	// The time of "/" is when each extraction ran (the layer has no "./").
	summary := func(dir string) map[string]string {
		m := treeSummary(t, dir)
		delete(m, ".")
		return m
	}
	want := summary(fresh)
	if d := diffSummaries(want, summary(cached)); len(d) > 0 {
		t.Fatalf("cached root file system differs from the base:\n%s", strings.Join(d, "\n"))
	}

	// Later builds, one of two stages on the same base built concurrently,
	// read no base layer and see the original files.
	tests := []struct {
		name string
		df   string
	}{
		{"one stage", "FROM busybox\nRUN cat /etc/motd > /out && ls /bin/ls >> /out && stat -c '%a %u' /etc/group /etc/passwd >> /out && ls -d /home/app >> /out\n"},
		{"two stages", "FROM busybox AS a\nRUN cat /etc/motd > /a\n" +
			"FROM busybox\nRUN cat /etc/motd > /out && ls /bin/ls >> /out && stat -c '%a %u' /etc/group /etc/passwd >> /out && ls -d /home/app >> /out\n" +
			"COPY --from=a /a /a\n"},
	}
	for _, tt := range tests {
		// Not parallel: the cache is checked again when they are done.
		t.Run(tt.name, func(t *testing.T) {
			img := newCountedImage(base)
			res, err := cachedBuild(t, cache, tt.df, img, opts...)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			if n := img.total(); n != 0 {
				t.Errorf("build read the base layers %d times", n)
			}
			got := flatten(t, res.Image)
			want := "file original\n/bin/ls\n644 0\n644 0\n/home/app 00644 0:0"
			if got["out"] != want {
				t.Errorf("/out = %q, want %q", got["out"], want)
			}
		})
	}
	if d := diffSummaries(want, summary(cached)); len(d) > 0 {
		t.Errorf("cached root file system changed:\n%s", strings.Join(d, "\n"))
	}
}

func TestBaseCacheConcurrentBuilds(t *testing.T) { inRootModes(t, testBaseCacheConcurrentBuilds) }

func testBaseCacheConcurrentBuilds(t *testing.T, opts []Option) {
	base := newCountedImage(testbed.BusyboxImage(t))
	cache := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = cachedBuild(t, cache, fmt.Sprintf("FROM busybox\nRUN echo %d > /n\n", i), base, opts...)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("build %d: %v", i, err)
		}
	}
	// One build extracts, the others wait for its entry and copy it.
	if n := base.total(); n != 1 {
		t.Errorf("base layer read %d times, want 1", n)
	}
	if got := cacheEntries(t, cache); len(got) != 1 {
		t.Errorf("cache entries = %v, want one", got)
	}
	if left := leftovers(t, cache); len(left) != 0 {
		t.Errorf("cache dir keeps %v", left)
	}
}

func TestBaseCachePrefix(t *testing.T) { inRootModes(t, testBaseCachePrefix) }

func testBaseCachePrefix(t *testing.T, opts []Option) {
	busybox := testbed.BusyboxImage(t)
	cache := t.TempDir()
	if _, err := cachedBuild(t, cache, "FROM busybox\nRUN true\n", busybox, opts...); err != nil {
		t.Fatalf("first build: %v", err)
	}
	// A base made of the busybox layer plus one more: only the new layer
	// is read, on top of a copy of the cached busybox.
	extra := tarLayer(t, []tarFile{{name: "etc", dir: true}, {name: "etc/extra", body: "extra"}})
	two, err := mutate.AppendLayers(busybox, extra)
	if err != nil {
		t.Fatal(err)
	}
	img := newCountedImage(two)
	res, err := cachedBuild(t, cache, "FROM busybox\nRUN cat /etc/extra > /out && ls /bin/sh >> /out\n", img, opts...)
	if err != nil {
		t.Fatalf("build on two layers: %v", err)
	}
	if n := img.reads[0].Load(); n != 0 {
		t.Errorf("cached first layer read %d times", n)
	}
	if n := img.reads[1].Load(); n != 1 {
		t.Errorf("second layer read %d times, want 1", n)
	}
	if got, want := flatten(t, res.Image)["out"], "file extra/bin/sh 00644 0:0"; got != want {
		t.Errorf("/out = %q, want %q", got, want)
	}
	if got := cacheEntries(t, cache); len(got) != 2 {
		t.Errorf("cache entries = %v, want two (one per chain)", got)
	}
}

// failingLayer's streams break after n bytes.
type failingLayer struct {
	v1.Layer
	n int64
}

func (l failingLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, l.n/4), iotest.ErrReader(errors.New("connection reset"))), rc}, nil
}

func (l failingLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, l.n), iotest.ErrReader(errors.New("connection reset"))), rc}, nil
}

func TestBaseCacheBrokenLayer(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	busybox, err := testbed.BusyboxImage(t).Layers()
	if err != nil {
		t.Fatal(err)
	}
	small := tarLayer(t, []tarFile{{name: "etc", dir: true}, {name: "etc/extra", body: "extra"}})
	tests := []struct {
		name   string
		layers []v1.Layer
	}{
		{name: "first layer", layers: []v1.Layer{failingLayer{Layer: busybox[0], n: 100 << 10}, small}},
		{name: "last layer", layers: []v1.Layer{busybox[0], failingLayer{Layer: small, n: 512}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cache := t.TempDir()
			c := newBaseCache(cache)
			_, err := c.entry(context.Background(), tt.layers)
			if err == nil || !strings.Contains(err.Error(), "connection reset") {
				t.Fatalf("error = %v, want the layer's", err)
			}
			if !errors.As(err, new(*extractError)) {
				t.Errorf("error %v is not an extraction error", err)
			}
			if got := cacheEntries(t, cache); len(got) != 0 {
				t.Errorf("cache entries = %v, want none", got)
			}
			if left := leftovers(t, cache); len(left) != 0 {
				t.Errorf("cache dir keeps %v", left)
			}
		})
	}
}

func TestBaseCacheHostileLayer(t *testing.T) { inRootModes(t, testBaseCacheHostileLayer) }

func testBaseCacheHostileLayer(t *testing.T, opts []Option) {
	hostile := tarLayer(t, []tarFile{{name: "../escape", body: "x"}})
	img, err := mutate.AppendLayers(testbed.BusyboxImage(t), hostile)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := hostile.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	_, err = cachedBuild(t, cache, "FROM busybox\nRUN true\n", img, opts...)
	if err == nil || !strings.Contains(err.Error(), "layer "+digest.String()+": entry \"../escape\"") {
		t.Fatalf("error = %v, want one naming the layer and the entry", err)
	}
	if strings.Contains(err.Error(), "cache unavailable") {
		t.Errorf("the hostile layer was extracted a second time without the cache:\n%v", err)
	}
	if got := cacheEntries(t, cache); len(got) != 0 {
		t.Errorf("cache entries = %v, want none", got)
	}
	if left := leftovers(t, cache); len(left) != 0 {
		t.Errorf("cache dir keeps %v", left)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cache), "escape")); err == nil {
		t.Error("the hostile layer wrote outside the root file system")
	}
}

func TestWithoutRootFSCache(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	img := newCountedImage(testbed.BusyboxImage(t))
	cache := t.TempDir()
	for i := range 2 {
		src := &memSource{images: map[string]v1.Image{"busybox": img}}
		_, err := Build(context.Background(), fixture{dockerfile: "FROM busybox\nRUN echo ok > /ok\n"}.request(t),
			WithImageSource(src), WithCacheDir(cache), WithoutRootFSCache())
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
	}
	if _, err := os.Stat(filepath.Join(cache, rootfsCacheDir)); err == nil {
		t.Error("root file system cache made with WithoutRootFSCache")
	}
	if n := img.total(); n != 2 {
		t.Errorf("base layer read %d times by two builds, want 2", n)
	}
}

// TestBaseCacheCreatorDoesNotWaitForReaders: a reader keeps the entry
// locked shared while it uses it (an overlay mount, for the whole build).
// A second user that found no entry just before the first created it must
// find it then, not wait for the exclusive lock held off by that reader.
func TestBaseCacheCreatorDoesNotWaitForReaders(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	layers, err := testbed.BusyboxImage(t).Layers()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first := newBaseCache(dir)
	second := newBaseCache(dir)
	missed := make(chan struct{})
	proceed := make(chan struct{})
	second.afterMiss = func() {
		close(missed)
		<-proceed
		second.afterMiss = nil
	}
	done := make(chan error, 1)
	go func() {
		e, err := second.entry(ctx, layers)
		if err == nil {
			defer e.release()
			if !e.hit {
				err = errors.New("the second user created the entry again")
			}
		}
		done <- err
	}()
	<-missed
	e, err := first.entry(ctx, layers) // creates it, keeps it locked shared
	if err != nil {
		t.Fatal(err)
	}
	defer e.release()
	close(proceed)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the second user waited for the exclusive lock while the first reads the entry")
	}
}

// TestDeferredCleanup: with WithDeferredCleanup, Build returns with its
// temporary directory still there, nothing mounted in it and no cache
// entry locked, and the function it hands over deletes it.
func TestDeferredCleanup(t *testing.T) { inRootModes(t, testDeferredCleanup) }

func testDeferredCleanup(t *testing.T, modeOpts []Option) {
	cache := t.TempDir()
	var cleanup func()
	opts := append(slices.Clone(modeOpts), WithDeferredCleanup(func(f func()) { cleanup = f }))
	// Stage b is built on a, whose root is kept for it.
	res, err := cachedBuild(t, cache, "FROM busybox AS a\nRUN echo a > /a\nFROM a\nRUN cat /a > /b\n",
		testbed.BusyboxImage(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if got := flatten(t, res.Image)["b"]; got != "file a 00644 0:0" {
		t.Errorf("/b = %q", got)
	}
	if cleanup == nil {
		t.Fatal("Build handed over no cleanup")
	}
	tmps, _ := filepath.Glob(filepath.Join(cache, "ship-build-*"))
	if len(tmps) != 1 {
		t.Fatalf("temporary directories before the cleanup: %v, want one", tmps)
	}
	if m := mountsUnder(t, tmps[0]); len(m) > 0 {
		t.Errorf("mounts left in %s before the cleanup: %v", tmps[0], m)
	}
	// Every cache entry is unlocked: an exclusive lock is free.
	c := newBaseCache(cache)
	for _, key := range cacheEntries(t, cache) {
		lk, got, err := c.tryLock(key, unix.LOCK_EX)
		if err != nil || !got {
			t.Errorf("cache entry %s still locked (err %v)", key, err)
		}
		lk.unlock()
	}
	cleanup()
	if tmps, _ := filepath.Glob(filepath.Join(cache, "ship-build-*")); len(tmps) != 0 {
		t.Errorf("temporary directories after the cleanup: %v", tmps)
	}
}

// TestBaseCacheUncompressedBase: without overlay, a base whose layer is
// not gzip (an uncompressed OCI layer, read through Uncompressed) is also
// extracted once and cached from its spooled stream.
func TestBaseCacheUncompressedBase(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	busybox := testbed.BusyboxImage(t)
	layers, err := busybox.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	tarball, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	img := testbed.LinuxImage(t, static.NewLayer(tarball, types.OCIUncompressedLayer))
	cache := t.TempDir()
	first := newCountedImage(img)
	_, logs, err := cachedBuildLogged(t, cache, "FROM busybox\nRUN echo a > /a\n", first, WithoutOverlay())
	if err != nil {
		t.Fatal(err)
	}
	if n := first.total(); n != 1 {
		t.Errorf("first build read the base layer %d times, want 1", n)
	}
	if !strings.Contains(logs, "base root file system stored in the cache") {
		t.Errorf("entry not made from the spooled layer; log:\n%s", logs)
	}
	second := newCountedImage(img)
	res, err := cachedBuild(t, cache, "FROM busybox\nRUN ls /bin/sh > /out\n", second, WithoutOverlay())
	if err != nil {
		t.Fatal(err)
	}
	if n := second.total(); n != 0 {
		t.Errorf("second build read the base layer %d times, want 0", n)
	}
	if got := flatten(t, res.Image)["out"]; got != "file /bin/sh 00644 0:0" {
		t.Errorf("/out = %q", got)
	}
}

// TestBaseEntryOnSecondUse: with overlay mounts, the first build on a base
// extracts it in memory and only records the use; the second makes the
// cache entry; the third uses it. Each build's RUN sees the whole base.
func TestBaseEntryOnSecondUse(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	img := testbed.BusyboxImage(t, testbed.WithFile("/etc/second-use", "base\n"))
	cache := t.TempDir()
	entries := func() []string {
		m, _ := filepath.Glob(filepath.Join(cache, rootfsCacheDir, "*", entryReport))
		return m
	}
	const df = "FROM busybox\nRUN cat /etc/second-use > /seen\n"
	for i, want := range []string{"used for the first time", "cached=false", "cached=true"} {
		res, logs, err := cachedBuildLogged(t, cache, df, img)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs, want) {
			t.Errorf("build %d: log lacks %q:\n%s", i+1, want, logs)
		}
		if got := flatten(t, res.Image)["seen"]; got != "file base 00644 0:0" {
			t.Errorf("build %d: /seen = %q", i+1, got)
		}
		if n := len(entries()); (i == 0) != (n == 0) {
			t.Errorf("build %d: %d cache entries", i+1, n)
		}
		if m := mountsUnder(t, cache); len(m) > 0 {
			t.Errorf("build %d: mounts left after the build: %v", i+1, m)
		}
	}
	used, _ := filepath.Glob(filepath.Join(cache, rootfsCacheDir, "*"+usedSuffix))
	if len(used) != 1 {
		t.Errorf("use markers %v, want one", used)
	}
}
