package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"testing"
	"testing/fstest"
)

// extracted extracts img into a new directory and opens it as a DirView.
func extracted(t *testing.T, img *countingImage) *DirView {
	t.Helper()
	dir := t.TempDir()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(context.Background(), dir, layers); err != nil {
		t.Fatal(err)
	}
	d, err := NewDirView(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestDirViewFSTest(t *testing.T) {
	t.Parallel()
	d := extracted(t, fixtureWith(t, false))
	if err := fstest.TestFS(d,
		"etc/passwd", "etc/group", "etc/os-release", "etc/motd", "bin/su", "tmp", "usr/lib/libc.so",
		"lib", "abs", "escape", "old/b", "opq/z", "repl", "implicit/deep/file", "big", "var/hard", "app/main.py",
	); err != nil {
		t.Error(err)
	}
}

// TestDirViewMatchesView: an extracted image seen through DirView answers
// every lookup as View answers it from the layers.
func TestDirViewMatchesView(t *testing.T) {
	t.Parallel()
	img := fixture(t)
	v := NewView(img)
	d := extracted(t, img)
	owners := os.Geteuid() == 0 // extraction keeps owners only as root
	names := []string{
		".", "etc", "etc/passwd", "etc/motd", "lib", "lib/libc.so", "abs", "escape", "usr/up",
		"usr/up/os-release", "var/hard", "big", "repl", "implicit/deep/file", "old", "old/b",
		"opq", "opq/z", "gone", "old/a", "opq/x", "repl/c", "dangling", "loop1", "etc/.wh.passwd",
		"/etc/passwd", "etc/../etc/passwd", "bin/su", "tmp", "app/main.py",
	}
	type op struct {
		name string
		stat func(fs.FS, string) (fs.FileInfo, error)
	}
	ops := []op{
		{"Stat", func(f fs.FS, n string) (fs.FileInfo, error) { return fs.Stat(f, n) }},
		{"Lstat", func(f fs.FS, n string) (fs.FileInfo, error) { return fs.Lstat(f, n) }},
	}
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			t.Parallel()
			for _, o := range ops {
				want, werr := o.stat(v, n)
				got, gerr := o.stat(d, n)
				if !sameErr(werr, gerr) {
					t.Fatalf("%s: error %v, View's %v", o.name, gerr, werr)
				}
				if werr != nil {
					continue
				}
				wh, gh := want.Sys().(*tar.Header), got.Sys().(*tar.Header)
				wt := wh.Typeflag
				if wt == tar.TypeLink {
					wt = tar.TypeReg
				}
				if gh.Typeflag != wt || gh.Mode != wh.Mode || gh.Linkname != wh.Linkname && wt == tar.TypeSymlink ||
					got.Size() != want.Size() && wt == tar.TypeReg || got.Mode() != want.Mode() || got.Name() != want.Name() {
					t.Errorf("%s: %v %o %q size %d mode %v name %q; View: %v %o %q size %d mode %v name %q", o.name,
						gh.Typeflag, gh.Mode, gh.Linkname, got.Size(), got.Mode(), got.Name(),
						wh.Typeflag, wh.Mode, wh.Linkname, want.Size(), want.Mode(), want.Name())
				}
				if owners && (gh.Uid != wh.Uid || gh.Gid != wh.Gid) {
					t.Errorf("%s: owner %d:%d, View's %d:%d", o.name, gh.Uid, gh.Gid, wh.Uid, wh.Gid)
				}
				if wt != tar.TypeDir && !gh.ModTime.Equal(wh.ModTime) {
					t.Errorf("%s: mtime %v, View's %v", o.name, gh.ModTime, wh.ModTime)
				}
			}
			wb, werr := fs.ReadFile(v, n)
			gb, gerr := fs.ReadFile(d, n)
			if !sameErr(werr, gerr) || string(wb) != string(gb) {
				t.Errorf("ReadFile: %.30q %v; View: %.30q %v", gb, gerr, wb, werr)
			}
			wl, werr := fs.ReadLink(v, n)
			gl, gerr := fs.ReadLink(d, n)
			if !sameErr(werr, gerr) && werr == nil || wl != gl {
				t.Errorf("ReadLink: %q %v; View: %q %v", gl, gerr, wl, werr)
			}
			we, werr := fs.ReadDir(v, n)
			ge, gerr := fs.ReadDir(d, n)
			if (werr == nil) != (gerr == nil) || !slices.Equal(entryNames(we), entryNames(ge)) {
				t.Errorf("ReadDir: %v %v; View: %v %v", entryNames(ge), gerr, entryNames(we), werr)
			}
		})
	}
}

// sameErr reports whether two lookup errors are the same kind of failure
// (a path below a non-directory is missing, whether ENOTDIR or
// fs.ErrNotExist says so).
func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	missing := func(err error) bool { return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) }
	return missing(a) == missing(b) && errors.Is(a, fs.ErrInvalid) == errors.Is(b, fs.ErrInvalid)
}

func entryNames(es []fs.DirEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestDirViewHardLinks: the names of one file carry the same PAXInode.
func TestDirViewHardLinks(t *testing.T) {
	t.Parallel()
	d := extracted(t, fixture(t))
	a, err := d.Lstat("var/hard")
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Lstat("etc/os-release")
	if err != nil {
		t.Fatal(err)
	}
	ka := a.Sys().(*tar.Header).PAXRecords[PAXInode]
	kb := b.Sys().(*tar.Header).PAXRecords[PAXInode]
	if ka == "" || ka != kb {
		t.Errorf("inode records %q and %q, want equal and set", ka, kb)
	}
	c, err := d.Lstat("etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := c.Sys().(*tar.Header).PAXRecords[PAXInode]; ok {
		t.Errorf("a file with one name has inode record %q", k)
	}
}
