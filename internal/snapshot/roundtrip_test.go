package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/intesys/ship-action/internal/layer"
)

// roundTripBase is std plus hardlinks, a setuid file and a directory that
// the change recreates.
func roundTripBase(t testing.TB, d string) {
	std(t, d)
	write(t, d, "hl/one", "shared", 0o644)
	must(t, os.Link(filepath.Join(d, "hl/one"), filepath.Join(d, "hl/two")))
	write(t, d, "hl/keep1", "kept", 0o644)
	must(t, os.Link(filepath.Join(d, "hl/keep1"), filepath.Join(d, "hl/keep2")))
	write(t, d, "sbin/su", "su", 0o755|os.ModeSetuid)
	write(t, d, "r/one", "1", 0o644)
	write(t, d, "r/two", "2", 0o644)
}

// roundTripChange does many kinds of change at once.
func roundTripChange(t testing.TB, d string) {
	j := func(p string) string { return filepath.Join(d, p) }
	write(t, d, "a/new", "new", 0o600)
	must(t, os.WriteFile(j("a/b/c/f"), []byte("modified content"), 0))
	must(t, os.Chmod(j("a/g"), 0o600))
	must(t, os.Lchown(j("bin/tool"), 1000, 1000))
	must(t, os.Chmod(j("bin/tool"), 0o755|os.ModeSetuid|os.ModeSetgid))
	must(t, os.Chmod(j("sbin/su"), 0o755))
	must(t, os.Remove(j("etc/passwd")))
	must(t, os.RemoveAll(j("tree/x/y")))
	must(t, os.Remove(j("file")))
	write(t, d, "file/inner", "inner", 0o644)
	must(t, os.Remove(j("emptydir")))
	symlink(t, d, "/etc", "emptydir")
	must(t, os.Remove(j("link")))
	symlink(t, d, "a/g", "link")
	write(t, d, "n/x", "pair", 0o644)
	must(t, os.Link(j("n/x"), j("n/y")))
	must(t, os.Link(j("hl/one"), j("hl/three")))
	must(t, os.WriteFile(j("hl/two"), []byte("SHARED"), 0))
	must(t, os.Rename(j("a/b"), j("a/c")))
	write(t, d, "proc/2/status", "ignored", 0o644)
	must(t, os.RemoveAll(j("r")))
	write(t, d, "r/two", "two again", 0o644)
	write(t, d, "r/three", "3", 0o644)
	must(t, unix.Mkfifo(j("fifo"), 0o640))
	mkdir(t, d, "deep/er/still")
	must(t, os.Chmod(j("a/g"), 0o600))
	must(t, os.Chmod(j("sbin"), 0o755))
	must(t, os.Rename(j("tree/x/w"), j("tree/x/w2")))
	must(t, os.Rename(j("tree/x/w2"), j("tree/x/w")))
}

// TestRoundTrip applies the layer of a Diff to a copy of the base tree and
// checks that the result is the changed tree.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	for _, tt := range []struct {
		name string
		opts []Option
	}{
		{"metadata", nil},
		{"content hash", []Option{WithContentHash()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			changed, applied := t.TempDir(), t.TempDir()
			roundTripBase(t, changed)
			roundTripBase(t, applied)
			settle()
			s, err := Take(ctx, changed, append(tt.opts, WithIgnore("proc"))...)
			must(t, err)
			roundTripChange(t, changed)
			entries, err := s.Diff(ctx, changed)
			must(t, err)
			l, err := layer.New(ctx, entries)
			must(t, err)
			rc, err := l.Uncompressed()
			must(t, err)
			defer rc.Close()
			apply(t, applied, rc)

			want, got := tree(t, changed), tree(t, applied)
			for p, w := range want {
				if g, ok := got[p]; !ok {
					t.Errorf("%s: missing after applying the layer", p)
				} else if g != w {
					t.Errorf("%s: got %s, want %s", p, g, w)
				}
			}
			for p := range got {
				if _, ok := want[p]; !ok {
					t.Errorf("%s: left over after applying the layer", p)
				}
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("layer: %q", summary(entries))
			}
		})
	}
}

// apply extracts a layer tar into dir, as a container runtime does: whiteouts
// remove, a non-directory replaces whatever is there.
func apply(t testing.TB, dir string, r io.Reader) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		must(t, err)
		name := strings.TrimSuffix(h.Name, "/")
		full := filepath.Join(dir, name)
		if base := path.Base(name); strings.HasPrefix(base, ".wh.") {
			if base == ".wh..wh..opq" {
				t.Fatalf("unexpected opaque whiteout %s", name)
			}
			must(t, os.RemoveAll(filepath.Join(filepath.Dir(full), strings.TrimPrefix(base, ".wh."))))
			continue
		}
		if fi, err := os.Lstat(full); err == nil && !(fi.IsDir() && h.Typeflag == tar.TypeDir) {
			must(t, os.RemoveAll(full))
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(full, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				t.Fatal(err)
			}
		case tar.TypeReg:
			f, err := os.OpenFile(full, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			must(t, err)
			_, err = io.Copy(f, tr)
			must(t, err)
			must(t, f.Close())
		case tar.TypeSymlink:
			must(t, os.Symlink(h.Linkname, full))
		case tar.TypeLink:
			must(t, os.Link(filepath.Join(dir, h.Linkname), full))
			continue
		case tar.TypeFifo:
			must(t, unix.Mkfifo(full, 0o600))
		default:
			t.Fatalf("%s: unexpected type %c", name, h.Typeflag)
		}
		must(t, os.Lchown(full, h.Uid, h.Gid))
		if h.Typeflag != tar.TypeSymlink {
			must(t, unix.Fchmodat(unix.AT_FDCWD, full, uint32(h.Mode), 0))
		}
		ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, full, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// tree describes every path under dir but proc: type, mode, owner, content
// or link target, mtime second (not for directories) and hardlink group.
func tree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	groups := map[[2]uint64]string{}
	err := walk(context.Background(), dir, map[string]struct{}{"proc": {}}, func(rel, full string, r *record) error {
		d := []string{modeString(r)}
		switch {
		case r.isReg():
			b, err := os.ReadFile(full)
			if err != nil {
				return err
			}
			d = append(d, "content="+string(b))
		case r.link != "":
			d = append(d, "-> "+r.link)
		}
		if !r.isDir() && r.link == "" {
			d = append(d, "mtime="+time64(r.mtimeSec))
		}
		if !r.isDir() && r.nlink > 1 {
			k := [2]uint64{r.dev, r.ino}
			if _, ok := groups[k]; !ok {
				groups[k] = rel
			}
			d = append(d, "linked to "+groups[k])
		}
		out[rel] = strings.Join(d, " ")
		return nil
	})
	must(t, err)
	return out
}

func modeString(r *record) string {
	return strings.Join([]string{
		os.FileMode(r.mode & 0o777).String(), octal(r.mode & 0o7777), octal(r.mode & unix.S_IFMT),
		octal(r.uid) + ":" + octal(r.gid),
	}, " ")
}

func octal(v uint32) string { return "0" + strconv.FormatUint(uint64(v), 8) }

func time64(v int64) string { return strconv.FormatInt(v, 10) }
