package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/intesys/ship-action/internal/layer"
)

var mtime = time.Unix(1700000000, 0)

func reg(name, content string, mode int64, uid int) layer.Entry {
	return layer.Entry{
		Header: &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(content)), Mode: mode, Uid: uid, Gid: uid, ModTime: mtime},
		Open:   func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil },
	}
}

func dir(name string, mode int64) layer.Entry {
	return layer.Entry{Header: &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: mtime}}
}

func sym(name, target string) layer.Entry {
	return layer.Entry{Header: &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: mtime}}
}

func hard(name, target string) layer.Entry {
	return layer.Entry{Header: &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: mtime}}
}

func wh(name string) layer.Entry { return reg(name, "", 0, 0) }

// countingLayer counts how often a layer's content is read.
type countingLayer struct {
	v1.Layer
	reads *atomic.Int64
}

func (c countingLayer) Uncompressed() (io.ReadCloser, error) {
	c.reads.Add(1)
	return c.Layer.Uncompressed()
}

func (c countingLayer) Compressed() (io.ReadCloser, error) {
	c.reads.Add(1)
	return c.Layer.Compressed()
}

// countingImage wraps an image so that the reads of each layer are counted.
type countingImage struct {
	v1.Image
	reads []*atomic.Int64 // bottom first
}

func (c *countingImage) Layers() ([]v1.Layer, error) {
	ls, err := c.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = countingLayer{Layer: l, reads: c.reads[i]}
	}
	return out, nil
}

func (c *countingImage) counts() []int64 {
	out := make([]int64, len(c.reads))
	for i, r := range c.reads {
		out[i] = r.Load()
	}
	return out
}

// image builds an image whose layers hold the given entries, bottom first.
func image(t testing.TB, layers ...[]layer.Entry) *countingImage {
	t.Helper()
	img := empty.Image
	ci := &countingImage{}
	for _, es := range layers {
		l, err := layer.New(context.Background(), es)
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.AppendLayers(img, l)
		if err != nil {
			t.Fatal(err)
		}
		ci.reads = append(ci.reads, new(atomic.Int64))
	}
	ci.Image = img
	return ci
}

const passwd = `# the system users
root:x:0:0:root:/root:/bin/sh

  alice:x:1000:1001:Alice:/home/alice:/bin/sh
bob:x:1002
eve:x:abc:1:bad uid:/:/bin/false
dup:x:1000:7:second entry of uid 1000:/nowhere:/bin/sh
`

const group = `root:x:0:
# comment
staff:x:50:alice,bob
short:x
users:x:100
`

var bigContent = strings.Repeat("0123456789abcdef", 100<<10/16) // 100 KB: streamed, not cached

func fixture(t testing.TB) *countingImage { return fixtureWith(t, true) }

// fixtureWith builds the test image; broken adds dangling and looping
// symlinks (which fstest.TestFS rejects).
func fixtureWith(t testing.TB, broken bool) *countingImage {
	var bad []layer.Entry
	if broken {
		bad = []layer.Entry{sym("loop1", "loop2"), sym("loop2", "loop1"), sym("dangling", "nowhere")}
	}
	return image(t,
		append(bad, // 0
			dir("etc", 0o755),
			reg("etc/passwd", passwd, 0o644, 0),
			reg("etc/group", group, 0o644, 0),
			reg("etc/os-release", "ID=debian\n", 0o644, 0),
			dir("bin", 0o755),
			reg("bin/su", "su", 0o4755, 0),
			dir("tmp", 0o1777),
			dir("usr", 0o755),
			dir("usr/lib", 0o755),
			reg("usr/lib/libc.so", "libc", 0o755, 0),
			sym("lib", "usr/lib"),
			sym("abs", "/etc/passwd"),
			sym("escape", "../../../etc/passwd"),
			sym("usr/up", "../../../../etc"),
			dir("old", 0o700),
			reg("old/a", "a", 0o600, 1000),
			reg("old/b", "b", 0o600, 1000),
			reg("gone", "gone", 0o644, 0),
			dir("opq", 0o755),
			reg("opq/x", "x", 0o644, 0),
			reg("opq/y", "y", 0o644, 0),
			dir("repl", 0o755),
			reg("repl/c", "c", 0o644, 0),
			reg("big", bigContent, 0o644, 0),
			dir("var", 0o755),
			hard("var/hard", "etc/os-release"),
		),
		[]layer.Entry{ // 1
			wh(".wh.gone"),
			dir("old", 0o750), // metadata change, children kept
			wh("old/.wh.a"),
			dir("opq", 0o711),
			wh("opq/.wh..wh..opq"),
			reg("opq/z", "z", 0o644, 0),
			reg("repl", "now a file", 0o644, 0),
			reg("implicit/deep/file", "no parent entries", 0o644, 0),
		},
		[]layer.Entry{ // 2 (top)
			dir("etc", 0o755),
			reg("etc/motd", "hello\n", 0o644, 0),
			dir("app", 0o755),
			reg("app/main.py", "print('hi')\n", 0o640, 1000),
		},
	)
}

func TestViewFSTest(t *testing.T) {
	t.Parallel()
	v := NewView(fixtureWith(t, false))
	if err := fstest.TestFS(v,
		"etc/passwd", "etc/group", "etc/os-release", "etc/motd", "bin/su", "tmp", "usr/lib/libc.so",
		"lib", "abs", "escape", "old/b", "opq/z", "repl", "implicit/deep/file", "big", "var/hard", "app/main.py",
	); err != nil {
		t.Error(err)
	}
}

func TestViewLookups(t *testing.T) {
	t.Parallel()
	v := NewView(fixture(t))
	tests := []struct {
		name    string
		content string // "" for no check
		err     error  // expected error, nil for none
	}{
		{name: "etc/passwd", content: passwd},
		{name: "etc/motd", content: "hello\n"},
		{name: "lib/libc.so", content: "libc"},
		{name: "abs", content: passwd},
		{name: "escape", content: passwd},
		{name: "usr/up/os-release", content: "ID=debian\n"},
		{name: "var/hard", content: "ID=debian\n"},
		{name: "big", content: bigContent},
		{name: "repl", content: "now a file"},
		{name: "implicit/deep/file", content: "no parent entries"},
		{name: "old/b", content: "b"},
		{name: "opq/z", content: "z"},
		{name: "gone", err: fs.ErrNotExist},
		{name: "old/a", err: fs.ErrNotExist},
		{name: "opq/x", err: fs.ErrNotExist},
		{name: "repl/c", err: syscall.ENOTDIR},
		{name: "dangling", err: fs.ErrNotExist},
		{name: "loop1", err: syscall.ELOOP},
		{name: "etc/.wh.passwd", err: fs.ErrNotExist},
		{name: ".wh.gone", err: fs.ErrNotExist},
		{name: "/etc/passwd", err: fs.ErrInvalid},
		{name: "etc/../etc/passwd", err: fs.ErrInvalid},
		{name: "etc", err: syscall.EISDIR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := v.ReadFile(tt.name)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ReadFile error %v, want %v", err, tt.err)
				}
				var pe *fs.PathError
				if !errors.As(err, &pe) || pe.Path != tt.name {
					t.Errorf("error %v is not a PathError for %q", err, tt.name)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.content {
				t.Errorf("content %.40q, want %.40q", got, tt.content)
			}
			// Open + Read agrees with ReadFile.
			f, err := v.Open(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil || string(b) != tt.content {
				t.Errorf("Open/Read: %.40q, %v", b, err)
			}
			fi, err := f.Stat()
			if err != nil || fi.Size() != int64(len(tt.content)) {
				t.Errorf("size %d, want %d (%v)", fi.Size(), len(tt.content), err)
			}
		})
	}
}

func TestViewMetadata(t *testing.T) {
	t.Parallel()
	v := NewView(fixture(t))
	tests := []struct {
		name     string
		lstat    bool
		mode     fs.FileMode
		uid      int
		typ      byte
		linkname string
	}{
		{name: ".", mode: fs.ModeDir | 0o755, typ: tar.TypeDir},
		{name: "tmp", mode: fs.ModeDir | fs.ModeSticky | 0o777, typ: tar.TypeDir},
		{name: "bin/su", mode: fs.ModeSetuid | 0o755, typ: tar.TypeReg},
		{name: "old", mode: fs.ModeDir | 0o750, typ: tar.TypeDir},
		{name: "opq", mode: fs.ModeDir | 0o711, typ: tar.TypeDir},
		{name: "implicit", mode: fs.ModeDir | 0o755, typ: tar.TypeDir},
		{name: "app/main.py", mode: 0o640, uid: 1000, typ: tar.TypeReg},
		{name: "lib", mode: fs.ModeDir | 0o755, typ: tar.TypeDir},
		{name: "lib", lstat: true, mode: fs.ModeSymlink | 0o777, typ: tar.TypeSymlink, linkname: "usr/lib"},
		{name: "abs", lstat: true, mode: fs.ModeSymlink | 0o777, typ: tar.TypeSymlink, linkname: "/etc/passwd"},
		{name: "var/hard", mode: 0o644, typ: tar.TypeLink, linkname: "etc/os-release"},
		{name: "var/hard", lstat: true, mode: 0o644, typ: tar.TypeLink, linkname: "etc/os-release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stat := v.Stat
			if tt.lstat {
				stat = v.Lstat
			}
			fi, err := stat(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			h, ok := fi.Sys().(*tar.Header)
			if !ok {
				t.Fatalf("Sys() is %T, want *tar.Header", fi.Sys())
			}
			if fi.Mode() != tt.mode || h.Uid != tt.uid || h.Typeflag != tt.typ || h.Linkname != tt.linkname {
				t.Errorf("got mode %v uid %d type %c link %q; want %v %d %c %q",
					fi.Mode(), h.Uid, h.Typeflag, h.Linkname, tt.mode, tt.uid, tt.typ, tt.linkname)
			}
			if want := tt.name[strings.LastIndex(tt.name, "/")+1:]; fi.Name() != want {
				t.Errorf("Name() %q, want %q", fi.Name(), want)
			}
		})
	}
}

func TestViewReadLink(t *testing.T) {
	t.Parallel()
	v := NewView(fixture(t))
	tests := []struct {
		name, want string
		err        error
	}{
		{name: "lib", want: "usr/lib"},
		{name: "escape", want: "../../../etc/passwd"},
		{name: "loop1", want: "loop2"},
		{name: "dangling", want: "nowhere"},
		{name: "etc/passwd", err: fs.ErrInvalid},
		{name: "missing", err: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := v.ReadLink(tt.name)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("ReadLink = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestViewReadDir(t *testing.T) {
	t.Parallel()
	img := fixture(t)
	v := NewView(img)
	tests := []struct {
		name string
		want string
	}{
		{".", "abs app big bin dangling escape etc implicit lib loop1 loop2 old opq repl tmp usr var"},
		{"etc", "group motd os-release passwd"},
		{"old", "b"},
		{"opq", "z"},
		{"lib", "libc.so"}, // through the symlink
		{"implicit/deep", "file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ents, err := v.ReadDir(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if got := strings.Join(names, " "); got != tt.want {
				t.Errorf("entries %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("not a dir", func(t *testing.T) {
		t.Parallel()
		if _, err := v.ReadDir("etc/passwd"); !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("error %v, want ENOTDIR", err)
		}
	})
	t.Run("walk reads each layer once", func(t *testing.T) {
		t.Parallel()
		img := fixture(t)
		v := NewView(img)
		for range 2 {
			n := 0
			if err := fs.WalkDir(v, ".", func(string, fs.DirEntry, error) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			if n < 20 {
				t.Errorf("walked %d entries", n)
			}
		}
		for i, c := range img.counts() {
			if c != 1 {
				t.Errorf("layer %d read %d times, want 1", i, c)
			}
		}
	})
}

// TestViewEarlyStop proves that lookups read layers from the top and stop
// at the first one that decides.
func TestViewEarlyStop(t *testing.T) {
	t.Parallel()
	bottom := []layer.Entry{dir("etc", 0o755), reg("etc/passwd", "bottom", 0o644, 0), reg("etc/only-bottom", "b", 0o644, 0), reg("etc/hosts", "h", 0o644, 0)}
	middle := []layer.Entry{dir("srv", 0o755), reg("srv/x", "x", 0o644, 0)}
	tests := []struct {
		name    string
		top     []layer.Entry
		path    string
		content string // "" means not found
		err     error  // when not found: ErrNotExist unless set
		reads   []int64
	}{
		{"found in top", []layer.Entry{dir("etc", 0o755), reg("etc/passwd", "top", 0o644, 0)}, "etc/passwd", "top", nil, []int64{0, 0, 1}},
		{"found in top without parent entry", []layer.Entry{reg("etc/passwd", "top", 0o644, 0)}, "etc/passwd", "top", nil, []int64{0, 0, 1}},
		{"whited out in top", []layer.Entry{dir("etc", 0o755), wh("etc/.wh.passwd")}, "etc/passwd", "", nil, []int64{0, 0, 1}},
		{"parent whited out in top", []layer.Entry{wh(".wh.etc")}, "etc/passwd", "", nil, []int64{0, 0, 1}},
		{"opaque parent in top", []layer.Entry{dir("etc", 0o755), wh("etc/.wh..wh..opq")}, "etc/passwd", "", nil, []int64{0, 0, 1}},
		{"parent replaced by a file in top", []layer.Entry{reg("etc", "file", 0o644, 0)}, "etc/passwd", "", syscall.ENOTDIR, []int64{0, 0, 1}},
		{"found in middle", []layer.Entry{reg("app", "a", 0o644, 0)}, "srv/x", "x", nil, []int64{0, 1, 1}},
		{"found in bottom", []layer.Entry{reg("app", "a", 0o644, 0)}, "etc/only-bottom", "b", nil, []int64{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img := image(t, bottom, middle, tt.top)
			v := NewView(img)
			for range 3 { // cached: repeating changes nothing
				got, err := v.ReadFile(tt.path)
				if tt.content == "" {
					want := tt.err
					if want == nil {
						want = fs.ErrNotExist
					}
					if !errors.Is(err, want) {
						t.Fatalf("error %v, want %v", err, want)
					}
				} else if err != nil || string(got) != tt.content {
					t.Fatalf("ReadFile = %q, %v; want %q", got, err, tt.content)
				}
			}
			if got := img.counts(); !equal(got, tt.reads) {
				t.Errorf("layer reads (bottom first) %v, want %v", got, tt.reads)
			}
		})
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestViewBigFilesAreStreamed(t *testing.T) {
	t.Parallel()
	img := fixture(t)
	v := NewView(img)
	for range 2 {
		got, err := v.ReadFile("big")
		if err != nil || string(got) != bigContent {
			t.Fatalf("ReadFile(big): %d bytes, %v", len(got), err)
		}
	}
	// Indexed once, then streamed once per read.
	if got := img.counts(); got[0] != 3 {
		t.Errorf("bottom layer read %d times, want 3 (index + 2 streams)", got[0])
	}
	f, err := v.Open("big")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(io.Seeker); ok {
		t.Errorf("streamed file claims to be seekable")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	small, err := v.Open("etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	ra, ok := small.(io.ReaderAt)
	if !ok {
		t.Fatal("cached file is not an io.ReaderAt")
	}
	buf := make([]byte, 4)
	if _, err := ra.ReadAt(buf, int64(strings.Index(passwd, "root"))); err != nil || string(buf) != "root" {
		t.Errorf("ReadAt = %q, %v", buf, err)
	}
}

func TestViewEmptyImageAndConcurrency(t *testing.T) {
	t.Parallel()
	v := NewView(empty.Image)
	fi, err := v.Stat(".")
	if err != nil || !fi.IsDir() {
		t.Fatalf("Stat(.) = %v, %v", fi, err)
	}
	if ents, err := v.ReadDir("."); err != nil || len(ents) != 0 {
		t.Errorf("ReadDir(.) = %v, %v", ents, err)
	}
	v = NewView(fixture(t))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if b, err := v.ReadFile("abs"); err != nil || !bytes.Equal(b, []byte(passwd)) {
				t.Errorf("ReadFile(abs) = %q, %v", b, err)
			}
			if _, err := v.ReadDir("etc"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// rawLayer makes a layer from tar headers as other tools write them.
func rawLayer(t *testing.T, hdrs []*tar.Header, bodies map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h.Size = int64(len(bodies[h.Name]))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(bodies[h.Name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestViewForeignLayers(t *testing.T) {
	t.Parallel()
	lower := rawLayer(t, []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "./", Mode: 0o700},
		{Typeflag: tar.TypeDir, Name: "./etc/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "./etc/passwd", Mode: 0o644},
		{Typeflag: tar.TypeReg, Name: "/abs-name", Mode: 0o644},
		{Typeflag: tar.TypeReg, Name: "../../evil", Mode: 0o644},
		{Typeflag: tar.TypeReg, Name: "dup", Mode: 0o644},
		{Typeflag: tar.TypeReg, Name: "./dup", Mode: 0o600},
		{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644},
	}, map[string]string{"./etc/passwd": "root:x:0:0::/root:/bin/sh\n", "/abs-name": "abs", "../../evil": "evil", "./dup": "second", "dup": "first", "f": "f-content"})
	upper := rawLayer(t, []*tar.Header{
		{Typeflag: tar.TypeLink, Name: "./h", Linkname: "./f"},
		{Typeflag: tar.TypeLink, Name: "h2", Linkname: "/etc/passwd"},
	}, nil)
	top := rawLayer(t, []*tar.Header{
		{Typeflag: tar.TypeReg, Name: ".wh.f", Mode: 0o644},
	}, nil)
	img, err := mutate.AppendLayers(empty.Image, lower, upper, top)
	if err != nil {
		t.Fatal(err)
	}
	v := NewView(img)
	tests := []struct {
		name, content string
	}{
		{"etc/passwd", "root:x:0:0::/root:/bin/sh\n"},
		{"abs-name", "abs"},
		{"evil", "evil"}, // "../../evil" stays under the root
		{"dup", "second"},
		{"h", "f-content"}, // hardlink to a file whited out above it
		{"h2", "root:x:0:0::/root:/bin/sh\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := v.ReadFile(tt.name)
			if err != nil || string(got) != tt.content {
				t.Errorf("ReadFile = %q, %v; want %q", got, err, tt.content)
			}
		})
	}
	t.Run("whited out", func(t *testing.T) {
		t.Parallel()
		if _, err := v.Stat("f"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(f) error %v, want not exist", err)
		}
	})
	t.Run("root header", func(t *testing.T) {
		t.Parallel()
		fi, err := v.Stat(".")
		if err != nil || fi.Mode() != fs.ModeDir|0o700 {
			t.Errorf("Stat(.) = %v, %v; want drwx------", fi.Mode(), err)
		}
	})
	t.Run("readdir", func(t *testing.T) {
		t.Parallel()
		ents, err := v.ReadDir(".")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if got, want := strings.Join(names, " "), "abs-name dup etc evil h h2"; got != want {
			t.Errorf("entries %q, want %q", got, want)
		}
	})
	if u, err := LookupUser(v, "root"); err != nil || u.Home != "/root" {
		t.Errorf("LookupUser(root) = %+v, %v", u, err)
	}
}

// namedLayer is a layer that says which top-level names it holds and
// counts how often it is read.
type namedLayer struct {
	v1.Layer
	top   []string
	reads *int
}

func (l namedLayer) TopLevelNames() []string { return l.top }

func (l namedLayer) Uncompressed() (io.ReadCloser, error) {
	*l.reads++
	return l.Layer.Uncompressed()
}

// TestViewSkipsLayersByTopLevelNames: a layer that names its top-level
// entries is not read for a path outside them, and still answers for the
// paths it holds, its whiteouts and a root opaque marker.
func TestViewSkipsLayersByTopLevelNames(t *testing.T) {
	t.Parallel()
	base := tarLayerOf(t, map[string]string{"app/a": "base a", "etc/x": "x"})
	reads := 0
	mk := func(files map[string]string, top ...string) v1.Layer {
		return namedLayer{Layer: tarLayerOf(t, files), top: top, reads: &reads}
	}
	tests := []struct {
		name      string
		top       v1.Layer
		path      string
		wantRead  bool
		wantFound bool
	}{
		{"other names: skipped", mk(map[string]string{"usr/bin/x": "x"}, "usr"), "app/a", false, true},
		{"its own name: read", mk(map[string]string{"app/b": "b"}, "app"), "app/a", true, true},
		{"whiteout of the name: read", mk(map[string]string{".wh.app": ""}, ".wh.app"), "app/a", true, false},
		{"root opaque marker: read", mk(map[string]string{".wh..wh..opq": ""}, ".wh..wh..opq"), "app/a", true, false},
		{"unknown names: read", namedLayer{Layer: tarLayerOf(t, map[string]string{"usr/x": "x"}), reads: &reads}, "app/a", true, true},
	}
	for _, tt := range tests {
		reads = 0
		img, err := mutate.AppendLayers(empty.Image, base, tt.top)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewView(img).Stat(tt.path)
		if found := err == nil; found != tt.wantFound {
			t.Errorf("%s: Stat(%s) found %v (%v), want %v", tt.name, tt.path, found, err, tt.wantFound)
		}
		if (reads > 0) != tt.wantRead {
			t.Errorf("%s: top layer read %d times, want read: %v", tt.name, reads, tt.wantRead)
		}
	}
}

// tarLayerOf makes a layer of regular files (parents implied).
func tarLayerOf(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	var hdrs []*tar.Header
	for name := range files {
		hdrs = append(hdrs, &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644})
	}
	return rawLayer(t, hdrs, files)
}
