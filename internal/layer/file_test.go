package layer

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestTopLevelNamesAndFileLayer: a layer lists the first component of its
// entries, and the same layer stored in a file reads back identically.
func TestTopLevelNamesAndFileLayer(t *testing.T) {
	t.Parallel()
	file := func(name, body string) Entry {
		return Entry{Header: &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(body)), Mode: 0o644},
			Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }}
	}
	dir := func(name string) Entry {
		return Entry{Header: &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
	}
	l, err := New(context.Background(), []Entry{dir("usr"), dir("usr/bin"), file("usr/bin/x", "x"), file(".wh.tmp", ""), file("app", "a")})
	if err != nil {
		t.Fatal(err)
	}
	top := l.(*Layer).TopLevelNames()
	if want := []string{".wh.tmp", "app", "usr"}; !slices.Equal(top, want) {
		t.Errorf("TopLevelNames = %q, want %q", top, want)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := l.Digest()
	diffID, _ := l.DiffID()
	if _, err := OpenFile(path, d, diffID, int64(len(data))+1, nil); err == nil {
		t.Error("OpenFile accepted a wrong size")
	}
	fl, err := OpenFile(path, d, diffID, int64(len(data)), top)
	if err != nil {
		t.Fatal(err)
	}
	urc, err := fl.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer urc.Close()
	tr := tar.NewReader(urc)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if want := []string{".wh.tmp", "app", "usr/", "usr/bin/", "usr/bin/x"}; !slices.Equal(names, want) {
		t.Errorf("file layer entries %q, want %q", names, want)
	}
	if !slices.Equal(fl.TopLevelNames(), top) {
		t.Errorf("file layer names %q", fl.TopLevelNames())
	}
}
