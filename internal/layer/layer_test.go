package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var t0 = time.Date(2024, 1, 2, 3, 4, 5, 600, time.UTC)

func file(name, content string, mode int64) Entry {
	return Entry{
		Header: &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(content)), Mode: mode, ModTime: t0},
		Open:   func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil },
	}
}

func dir(name string, mode int64) Entry {
	return Entry{Header: &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: t0}}
}

func symlink(name, target string) Entry {
	return Entry{Header: &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: t0}}
}

func sample() []Entry {
	return []Entry{
		dir("app", 0o755),
		file("app/main.py", "print('hi')\n", 0o644),
		file("app/bin", "#!/bin/sh\n", 0o4755),
		dir("app/sub", 0o700),
		file("app/sub/x", "x", 0o600),
		file("app-c", "dash sorts before slash bytewise", 0o644),
		symlink("app/link", "../etc/passwd"),
		{Header: &tar.Header{Typeflag: tar.TypeLink, Name: "app/hard", Linkname: "app/main.py", ModTime: t0}},
		file("etc/.wh.gone", "", 0o644),
		file("var/.wh..wh..opq", "", 0o644),
	}
}

func readAll(t *testing.T, open func() (io.ReadCloser, error)) []byte {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func sha(b []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(b))}
}

type tarEntry struct {
	hdr     *tar.Header
	content string
}

func untar(t *testing.T, b []byte) []tarEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h, string(c)})
	}
}

func TestNewRoundTrip(t *testing.T) {
	t.Parallel()
	l, err := New(context.Background(), sample())
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := l.MediaType(); mt != types.OCILayer {
		t.Errorf("media type %s, want %s", mt, types.OCILayer)
	}
	got := untar(t, readAll(t, l.Uncompressed))
	wantOrder := []string{"app/", "app/bin", "app/hard", "app/link", "app/main.py", "app/sub/", "app/sub/x", "app-c", "etc/.wh.gone", "var/.wh..wh..opq"}
	var names []string
	for _, e := range got {
		names = append(names, e.hdr.Name)
	}
	if strings.Join(names, " ") != strings.Join(wantOrder, " ") {
		t.Fatalf("order:\n got %v\nwant %v", names, wantOrder)
	}
	byName := map[string]tarEntry{}
	for _, e := range got {
		byName[e.hdr.Name] = e
		h := e.hdr
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: uname %q gname %q, want empty", h.Name, h.Uname, h.Gname)
		}
		if !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: atime/ctime set", h.Name)
		}
		if !h.ModTime.Equal(t0.Truncate(time.Second)) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, t0.Truncate(time.Second))
		}
		if len(h.PAXRecords) != 0 {
			t.Errorf("%s: unexpected PAX records %v", h.Name, h.PAXRecords)
		}
	}
	tests := []struct {
		name     string
		typ      byte
		mode     int64
		content  string
		linkname string
	}{
		{"app/", tar.TypeDir, 0o755, "", ""},
		{"app/bin", tar.TypeReg, 0o4755, "#!/bin/sh\n", ""},
		{"app/sub/", tar.TypeDir, 0o700, "", ""},
		{"app/main.py", tar.TypeReg, 0o644, "print('hi')\n", ""},
		{"app/link", tar.TypeSymlink, 0o777, "", "../etc/passwd"},
		{"app/hard", tar.TypeLink, 0, "", "app/main.py"},
		{"etc/.wh.gone", tar.TypeReg, 0o644, "", ""},
		{"var/.wh..wh..opq", tar.TypeReg, 0o644, "", ""},
	}
	for _, tt := range tests {
		e, ok := byName[tt.name]
		if !ok {
			t.Errorf("%s: missing", tt.name)
			continue
		}
		if e.hdr.Typeflag != tt.typ || e.hdr.Mode != tt.mode || e.content != tt.content || e.hdr.Linkname != tt.linkname {
			t.Errorf("%s: got type %c mode %o content %q link %q; want %c %o %q %q", tt.name,
				e.hdr.Typeflag, e.hdr.Mode, e.content, e.hdr.Linkname, tt.typ, tt.mode, tt.content, tt.linkname)
		}
	}
}

func TestNewHeadersAreUSTARUnlessNeeded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("d", 120) + "/" + strings.Repeat("f", 120)
	entries := []Entry{
		file("short", "a", 0o644),
		file(long, "b", 0o644),
		{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "bigid", Uid: 1 << 30, Gid: 5, Mode: 0o644},
			Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("")), nil }},
		{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "xattr", Mode: 0o755,
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00", "atime": "5"}}},
	}
	l, err := New(context.Background(), entries)
	if err != nil {
		t.Fatal(err)
	}
	raw := readAll(t, l.Uncompressed)
	// The first header block belongs to "short" and must be plain USTAR.
	if got := string(raw[257:265]); got != "ustar\x0000" {
		t.Errorf("magic %q, want ustar\\x0000", got)
	}
	for _, e := range untar(t, raw) {
		switch e.hdr.Name {
		case long:
		case "bigid":
			if e.hdr.Uid != 1<<30 {
				t.Errorf("bigid uid %d", e.hdr.Uid)
			}
		case "xattr":
			if e.hdr.PAXRecords["SCHILY.xattr.security.capability"] != "\x01\x00" {
				t.Errorf("xattr lost: %v", e.hdr.PAXRecords)
			}
			if _, ok := e.hdr.PAXRecords["atime"]; ok {
				t.Errorf("atime PAX record kept: %v", e.hdr.PAXRecords)
			}
		case "short":
			if e.hdr.Format != tar.FormatUSTAR {
				t.Errorf("short: format %v, want USTAR", e.hdr.Format)
			}
		default:
			t.Errorf("unexpected %q", e.hdr.Name)
		}
	}
}

func TestNewDeterministic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base, err := New(ctx, sample())
	if err != nil {
		t.Fatal(err)
	}
	wantD, _ := base.Digest()
	wantDiff, _ := base.DiffID()
	for i := range 5 {
		t.Run(fmt.Sprintf("shuffle%d", i), func(t *testing.T) {
			t.Parallel()
			e := sample()
			r := rand.New(rand.NewPCG(uint64(i), 1))
			r.Shuffle(len(e), func(a, b int) { e[a], e[b] = e[b], e[a] })
			l, err := New(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := l.Digest(); d != wantD {
				t.Errorf("digest %s, want %s", d, wantD)
			}
			if d, _ := l.DiffID(); d != wantDiff {
				t.Errorf("diffid %s, want %s", d, wantDiff)
			}
		})
	}
	t.Run("content change changes digest", func(t *testing.T) {
		t.Parallel()
		e := sample()
		e[1] = file("app/main.py", "print('ho')\n", 0o644)
		l, err := New(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := l.Digest(); d == wantD {
			t.Errorf("digest unchanged after a content change")
		}
	})
	for _, blocks := range []int{1, 3, 16} {
		t.Run(fmt.Sprintf("%d gzip blocks", blocks), func(t *testing.T) {
			t.Parallel()
			// Several gzip blocks: 3 MB of content.
			e := append(sample(), noiseEntries(3, 1<<20)...)
			want, err := New(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			l, err := New(ctx, e, func(o *options) error { o.blocks = blocks; return nil })
			if err != nil {
				t.Fatal(err)
			}
			if d, w := must(l.Digest()), must(want.Digest()); d != w {
				t.Errorf("digest %s, want %s", d, w)
			}
		})
	}
	t.Run("spooled equals in memory", func(t *testing.T) {
		t.Parallel()
		l, err := New(ctx, sample(), WithMemoryThreshold(0), WithTempDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		defer l.(io.Closer).Close()
		if !l.(*Layer).spooled {
			t.Fatal("not spooled with threshold 0")
		}
		if d, _ := l.Digest(); d != wantD {
			t.Errorf("digest %s, want %s", d, wantD)
		}
	})
}

func TestNewGzipHeader(t *testing.T) {
	t.Parallel()
	l, err := New(context.Background(), sample())
	if err != nil {
		t.Fatal(err)
	}
	b := readAll(t, l.Compressed)
	// ID1 ID2 CM FLG MTIME(4) XFL OS
	if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 {
		t.Fatalf("not gzip: % x", b[:3])
	}
	if b[3] != 0 {
		t.Errorf("gzip flags %#x, want 0 (no name, comment or extra)", b[3])
	}
	if !bytes.Equal(b[4:8], []byte{0, 0, 0, 0}) {
		t.Errorf("gzip mtime % x, want zero", b[4:8])
	}
}

func TestNewEpochClamp(t *testing.T) {
	t.Parallel()
	epoch := time.Unix(1700000000, 0)
	tests := []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{"later is clamped", time.Unix(1800000000, 5), epoch},
		{"earlier is kept", time.Unix(1600000000, 0), time.Unix(1600000000, 0)},
		{"sub-second truncated", time.Unix(1600000000, 999999999), time.Unix(1600000000, 0)},
		{"equal is kept", epoch, epoch},
		{"zero is the unix epoch", time.Time{}, time.Unix(0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := file("f", "x", 0o644)
			e.Header.ModTime = tt.in
			l, err := New(context.Background(), []Entry{e}, WithEpoch(epoch))
			if err != nil {
				t.Fatal(err)
			}
			got := untar(t, readAll(t, l.Uncompressed))
			if len(got) != 1 || !got[0].hdr.ModTime.Equal(tt.want) {
				t.Errorf("mtime %v, want %v", got[0].hdr.ModTime, tt.want)
			}
		})
	}
}

func TestNewHashesMatchContent(t *testing.T) {
	t.Parallel()
	for _, threshold := range []int64{0, DefaultMemoryThreshold} {
		t.Run(fmt.Sprintf("threshold%d", threshold), func(t *testing.T) {
			t.Parallel()
			l, err := New(context.Background(), sample(), WithMemoryThreshold(threshold), WithTempDir(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			defer l.(io.Closer).Close()
			for range 2 { // readable more than once
				comp := readAll(t, l.Compressed)
				uncomp := readAll(t, l.Uncompressed)
				if d, _ := l.Digest(); d != sha(comp) {
					t.Errorf("digest %s, content hashes to %s", d, sha(comp))
				}
				if d, _ := l.DiffID(); d != sha(uncomp) {
					t.Errorf("diffid %s, content hashes to %s", d, sha(uncomp))
				}
				if s, _ := l.Size(); s != int64(len(comp)) {
					t.Errorf("size %d, content is %d bytes", s, len(comp))
				}
				if s := l.(*Layer).UncompressedSize(); s != int64(len(uncomp)) {
					t.Errorf("uncompressed size %d, content is %d bytes", s, len(uncomp))
				}
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []Entry
		want    string
	}{
		{"absolute", []Entry{file("/etc/passwd", "", 0o644)}, `"/etc/passwd": absolute path`},
		{"dotdot", []Entry{file("a/../../etc", "", 0o644)}, `"a/../../etc": path contains ".."`},
		{"dotdot alone", []Entry{dir("..", 0o755)}, `"..": path contains ".."`},
		{"unclean", []Entry{file("a//b", "", 0o644)}, `"a//b": path is not clean`},
		{"dot slash", []Entry{file("./a", "", 0o644)}, `"./a": path is not clean`},
		{"empty", []Entry{file("", "", 0o644)}, `empty path`},
		{"duplicate", []Entry{file("a/b", "", 0o644), file("a/b", "", 0o600)}, `"a/b": duplicate path`},
		{"duplicate dir slash", []Entry{dir("d", 0o755), dir("d/", 0o755)}, `"d": duplicate path`},
		{"hardlink outside", []Entry{{Header: &tar.Header{Typeflag: tar.TypeLink, Name: "l", Linkname: "/etc/shadow"}}}, `hardlink target "/etc/shadow": absolute path`},
		{"nil header", []Entry{{}}, "nil header"},
		{"no content", []Entry{{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "f", Size: 3}}}, `"f": regular file of 3 bytes without content`},
		{"short content", []Entry{{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "f", Size: 3},
			Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("ab")), nil }}}, `"f": got 2 bytes, header says 3`},
		{"long content", []Entry{{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "f", Size: 1},
			Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("ab")), nil }}}, `"f": content is longer`},
		{"open fails", []Entry{{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "f", Size: 1},
			Open: func() (io.ReadCloser, error) { return nil, errors.New("boom") }}}, `opening "f": boom`},
		{"bad type", []Entry{{Header: &tar.Header{Typeflag: 'Z', Name: "f"}}}, `unsupported type`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(context.Background(), tt.entries)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNewCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(ctx, sample()); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

// noise yields n pseudo-random (incompressible) bytes without holding them.
type noise struct {
	r *rand.ChaCha8
	n int64
}

func (z *noise) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), z.n)]
	z.r.Read(p)
	z.n -= int64(len(p))
	return len(p), nil
}

func (z *noise) Close() error { return nil }

func noiseEntries(files int, size int64) []Entry {
	var e []Entry
	for i := range files {
		e = append(e, Entry{
			Header: &tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("f%03d", i), Size: size, Mode: 0o644},
			Open: func() (io.ReadCloser, error) {
				var seed [32]byte
				seed[0] = byte(i)
				return &noise{r: rand.NewChaCha8(seed), n: size}, nil
			},
		})
	}
	return e
}

// TestNewSpoolsBigLayers writes a 120 MB incompressible layer with a 16 MB
// memory threshold: the heap must stay well under the layer size (under
// half of it: pgzip's buffers and the collector's lag on a loaded machine
// take some 30 MB; a layer kept in memory would take all 120).
// Not parallel: it measures the heap.
func TestNewSpoolsBigLayers(t *testing.T) {
	const threshold = 16 << 20
	const layerSize = 120 << 20
	dir := t.TempDir()
	// Collect often, so that the peak measures what is live, not garbage.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	})
	l, err := New(context.Background(), noiseEntries(layerSize>>20, 1<<20), WithMemoryThreshold(threshold), WithTempDir(dir))
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	defer l.(io.Closer).Close()
	grown := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("peak heap growth %d MB", grown>>20)
	if grown > layerSize/2 {
		t.Errorf("heap grew by %d MB writing a %d MB layer, want <= %d MB", grown>>20, layerSize>>20, layerSize/2>>20)
	}
	if size, _ := l.Size(); size < layerSize {
		t.Fatalf("compressed size %d, want >= %d MB (incompressible input)", size, layerSize>>20)
	}
	if !l.(*Layer).spooled {
		t.Errorf("layer not spooled")
	}
	// The spool file is unlinked: nothing is left in the temp dir.
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("temp dir not empty: %v", ents)
	}
	// And its content is right.
	h := sha256.New()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	if d, _ := l.Digest(); d.Hex != fmt.Sprintf("%x", h.Sum(nil)) {
		t.Errorf("spooled content does not match digest")
	}
	if err := l.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Compressed(); err == nil {
		t.Errorf("Compressed after Close: no error")
	}
}

// BenchmarkNew writes a layer of 100 files, 2 MB in all.
func BenchmarkNew(b *testing.B) {
	entries := noiseEntries(100, 20<<10)
	b.SetBytes(100 * 20 << 10)
	for b.Loop() {
		if _, err := New(context.Background(), entries); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewStream writes a 64 MB incompressible layer while a reader
// drains its stream, as the upload during a build does.
func BenchmarkNewStream(b *testing.B) {
	entries := noiseEntries(256, 256<<10)
	b.SetBytes(256 * 256 << 10)
	dir := b.TempDir()
	for b.Loop() {
		done := make(chan struct{})
		l, err := New(context.Background(), entries, WithTempDir(dir), WithStream(func(sl v1.Layer) {
			go func() {
				defer close(done)
				rc, err := sl.Compressed()
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, rc)
				_ = rc.Close()
			}()
		}))
		if err != nil {
			b.Fatal(err)
		}
		<-done
		_ = l.(io.Closer).Close()
	}
}

// WriteTar is New's tar stream without the compression: callers that unpack
// entries at once get exactly what the layer would hold.
func TestWriteTarIsTheLayersTar(t *testing.T) {
	t.Parallel()
	epoch := WithEpoch(time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC))
	l := must(New(context.Background(), sample(), epoch))
	want := readAll(t, l.Uncompressed)
	var got bytes.Buffer
	if err := WriteTar(context.Background(), &got, sample(), epoch); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("WriteTar wrote %d bytes, the layer's tar has %d; they differ", got.Len(), len(want))
	}
	if err := WriteTar(context.Background(), io.Discard, []Entry{file("../x", "x", 0o644)}); err == nil {
		t.Error("WriteTar accepted a name with ..")
	}
}
