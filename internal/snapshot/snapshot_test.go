package snapshot

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/intesys/ship-action/internal/layer"
)

// baseTime is the mtime of every file of a base tree: a whole second, as for
// files extracted from a layer.
var baseTime = time.Unix(1700000000, 0)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// write creates dir/rel with content and mode, its parents as needed, and
// sets its mtime to baseTime.
func write(t testing.TB, dir, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, rel)
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), mode))
	must(t, os.Chmod(p, mode))
	must(t, os.Chtimes(p, baseTime, baseTime))
}

func mkdir(t testing.TB, dir, rel string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, rel), 0o755))
}

func symlink(t testing.TB, dir, target, rel string) {
	t.Helper()
	must(t, os.Symlink(target, filepath.Join(dir, rel)))
}

// std is the base tree most cases start from.
func std(t testing.TB, dir string) {
	t.Helper()
	write(t, dir, "a/b/c/f", "hello", 0o644)
	write(t, dir, "a/g", "world", 0o644)
	write(t, dir, "bin/tool", "#!/bin/sh\n", 0o755)
	write(t, dir, "etc/resolv.conf", "nameserver 1.1.1.1\n", 0o644)
	write(t, dir, "etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
	write(t, dir, "proc/1/status", "x", 0o644)
	write(t, dir, "tree/x/y/z", "z", 0o644)
	write(t, dir, "tree/x/w", "w", 0o644)
	write(t, dir, "file", "data", 0o644)
	symlink(t, dir, "file", "link")
	mkdir(t, dir, "emptydir")
}

// summary describes entries, one string each, in order.
func summary(entries []layer.Entry) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		h := e.Header
		var s string
		switch {
		case strings.HasPrefix(filepath.Base(h.Name), ".wh."):
			s = "w " + h.Name
		case h.Typeflag == tar.TypeDir:
			s = fmt.Sprintf("d %s %o %d:%d", h.Name, h.Mode, h.Uid, h.Gid)
		case h.Typeflag == tar.TypeReg:
			s = fmt.Sprintf("f %s %o %d:%d", h.Name, h.Mode, h.Uid, h.Gid)
			if c, ok := h.PAXRecords["SCHILY.xattr.security.capability"]; ok {
				s += fmt.Sprintf(" cap=%x", c)
			}
		case h.Typeflag == tar.TypeSymlink:
			s = fmt.Sprintf("l %s -> %s", h.Name, h.Linkname)
		case h.Typeflag == tar.TypeLink:
			s = fmt.Sprintf("h %s -> %s", h.Name, h.Linkname)
		case h.Typeflag == tar.TypeFifo:
			s = fmt.Sprintf("p %s %o", h.Name, h.Mode)
		case h.Typeflag == tar.TypeChar:
			s = fmt.Sprintf("c %s %d,%d", h.Name, h.Devmajor, h.Devminor)
		default:
			s = fmt.Sprintf("%c %s", h.Typeflag, h.Name)
		}
		out = append(out, s)
	}
	return out
}

// diffCase is a base tree, a change to it and the layer entries expected
// (summarised).
type diffCase struct {
	name   string
	base   func(testing.TB, string)
	change func(testing.TB, string)
	opts   []Option
	want   []string
	// upperWant, when upperDiffers, is what DiffUpper gives instead: it
	// always compares contents, as Diff does with WithContentHash.
	upperWant    []string
	upperDiffers bool
}

// diffCases are the cases of TestDiff and TestDiffUpper.
func diffCases() []diffCase {
	return []diffCase{{
		name:   "nothing changed",
		base:   std,
		change: func(testing.TB, string) {},
	}, {
		name:   "add file",
		base:   std,
		change: func(t testing.TB, d string) { write(t, d, "a/new", "n", 0o600) },
		want:   []string{"d a 755 0:0", "f a/new 600 0:0"},
	}, {
		name:   "add file at the root",
		base:   std,
		change: func(t testing.TB, d string) { write(t, d, "top", "n", 0o644) },
		want:   []string{"f top 644 0:0"},
	}, {
		name: "modify content, parents included",
		base: std,
		change: func(t testing.TB, d string) {
			must(t, os.WriteFile(filepath.Join(d, "a/b/c/f"), []byte("changed!"), 0))
		},
		want: []string{"d a 755 0:0", "d a/b 755 0:0", "d a/b/c 755 0:0", "f a/b/c/f 644 0:0"},
	}, {
		name: "same size, mtime set back: ambiguous, reported without hashes",
		base: std,
		change: func(t testing.TB, d string) {
			p := filepath.Join(d, "file")
			must(t, os.WriteFile(p, []byte("DATA"), 0))
			must(t, os.Chtimes(p, baseTime, baseTime))
		},
		want: []string{"f file 644 0:0"},
	}, {
		name: "same size, mtime set back: caught by the content hash",
		base: std,
		opts: []Option{WithContentHash()},
		change: func(t testing.TB, d string) {
			p := filepath.Join(d, "file")
			must(t, os.WriteFile(p, []byte("DATA"), 0))
			must(t, os.Chtimes(p, baseTime, baseTime))
		},
		want: []string{"f file 644 0:0"},
	}, {
		name: "touched but identical (chmod and chown to the same values) with the content hash",
		base: std,
		opts: []Option{WithContentHash()},
		change: func(t testing.TB, d string) {
			must(t, os.Chmod(filepath.Join(d, "file"), 0o644))
			must(t, os.Lchown(filepath.Join(d, "a/g"), 0, 0))
		},
	}, {
		name: "touched but identical without hashes: ambiguous, reported",
		base: std,
		change: func(t testing.TB, d string) {
			must(t, os.Chmod(filepath.Join(d, "file"), 0o644))
		},
		want:         []string{"f file 644 0:0"},
		upperDiffers: true,
	}, {
		name: "touched, identical, mtime with nanoseconds: not ambiguous",
		base: func(t testing.TB, d string) {
			std(t, d)
			ns := time.Unix(1700000000, 123456789)
			must(t, os.Chtimes(filepath.Join(d, "file"), ns, ns))
		},
		change: func(t testing.TB, d string) { must(t, os.Chmod(filepath.Join(d, "file"), 0o644)) },
	}, {
		name: "same content written again, new mtime",
		base: std,
		opts: []Option{WithContentHash()},
		change: func(t testing.TB, d string) {
			must(t, os.WriteFile(filepath.Join(d, "file"), []byte("data"), 0))
		},
		want: []string{"f file 644 0:0"},
	}, {
		name:   "chmod",
		base:   std,
		change: func(t testing.TB, d string) { must(t, os.Chmod(filepath.Join(d, "a/g"), 0o600)) },
		want:   []string{"d a 755 0:0", "f a/g 600 0:0"},
	}, {
		name:   "chmod directory",
		base:   std,
		change: func(t testing.TB, d string) { must(t, os.Chmod(filepath.Join(d, "tree/x"), 0o700)) },
		want:   []string{"d tree 755 0:0", "d tree/x 700 0:0"},
	}, {
		name:   "chown",
		base:   std,
		change: func(t testing.TB, d string) { must(t, os.Lchown(filepath.Join(d, "a/g"), 1000, 1001)) },
		want:   []string{"d a 755 0:0", "f a/g 644 1000:1001"},
	}, {
		name:   "chown symlink",
		base:   std,
		change: func(t testing.TB, d string) { must(t, os.Lchown(filepath.Join(d, "link"), 5, 6)) },
		want:   []string{"l link -> file"},
	}, {
		name:   "setuid bit",
		base:   std,
		change: func(t testing.TB, d string) { must(t, os.Chmod(filepath.Join(d, "bin/tool"), 0o755|os.ModeSetuid)) },
		want:   []string{"d bin 755 0:0", "f bin/tool 4755 0:0"},
	}, {
		name:   "sticky directory",
		base:   std,
		change: func(t testing.TB, d string) { must(t, os.Chmod(filepath.Join(d, "emptydir"), 0o777|os.ModeSticky)) },
		want:   []string{"d emptydir 1777 0:0"},
	}, {
		name:   "delete file",
		base:   std,
		change: func(t testing.TB, d string) { must(t, os.Remove(filepath.Join(d, "a/b/c/f"))) },
		want:   []string{"d a 755 0:0", "d a/b 755 0:0", "d a/b/c 755 0:0", "w a/b/c/.wh.f"},
	}, {
		name:   "delete directory tree: one whiteout",
		base:   std,
		change: func(t testing.TB, d string) { must(t, os.RemoveAll(filepath.Join(d, "tree/x"))) },
		want:   []string{"d tree 755 0:0", "w tree/.wh.x"},
	}, {
		name:   "delete top-level tree",
		base:   std,
		change: func(t testing.TB, d string) { must(t, os.RemoveAll(filepath.Join(d, "a"))) },
		want:   []string{"w .wh.a"},
	}, {
		name: "file becomes a directory",
		base: std,
		change: func(t testing.TB, d string) {
			must(t, os.Remove(filepath.Join(d, "file")))
			write(t, d, "file/inner", "i", 0o644)
		},
		want: []string{"d file 755 0:0", "f file/inner 644 0:0"},
	}, {
		name: "directory becomes a symlink",
		base: std,
		change: func(t testing.TB, d string) {
			must(t, os.RemoveAll(filepath.Join(d, "tree")))
			symlink(t, d, "/a", "tree")
		},
		want: []string{"l tree -> /a"},
	}, {
		name: "directory becomes a file",
		base: std,
		change: func(t testing.TB, d string) {
			must(t, os.RemoveAll(filepath.Join(d, "tree/x")))
			write(t, d, "tree/x", "now a file", 0o644)
		},
		want: []string{"d tree 755 0:0", "f tree/x 644 0:0"},
	}, {
		name: "directory deleted and created again",
		base: std,
		change: func(t testing.TB, d string) {
			must(t, os.RemoveAll(filepath.Join(d, "tree/x")))
			write(t, d, "tree/x/new", "n", 0o644)
		},
		want: []string{"d tree 755 0:0", "d tree/x 755 0:0", "w tree/x/.wh.w", "w tree/x/.wh.y", "f tree/x/new 644 0:0"},
	}, {
		name: "directory mtime only",
		base: std,
		change: func(t testing.TB, d string) {
			write(t, d, "tree/x/tmp", "t", 0o644)
			must(t, os.Remove(filepath.Join(d, "tree/x/tmp")))
		},
	}, {
		name: "symlink retarget",
		base: std,
		change: func(t testing.TB, d string) {
			must(t, os.Remove(filepath.Join(d, "link")))
			symlink(t, d, "a/g", "link")
		},
		want: []string{"l link -> a/g"},
	}, {
		name: "new hardlink pair",
		base: std,
		change: func(t testing.TB, d string) {
			write(t, d, "a/y", "linked", 0o644)
			must(t, os.Link(filepath.Join(d, "a/y"), filepath.Join(d, "a/x")))
		},
		want: []string{"d a 755 0:0", "f a/x 644 0:0", "h a/y -> a/x"},
	}, {
		name:   "hardlink to an unchanged file: only the new path, as BuildKit",
		base:   std,
		opts:   []Option{WithContentHash()},
		change: func(t testing.TB, d string) { must(t, os.Link(filepath.Join(d, "file"), filepath.Join(d, "a/zz"))) },
		want:   []string{"d a 755 0:0", "f a/zz 644 0:0"},
	}, {
		name:         "hardlink to an ambiguous file without hashes",
		base:         std,
		change:       func(t testing.TB, d string) { must(t, os.Link(filepath.Join(d, "file"), filepath.Join(d, "a/zz"))) },
		want:         []string{"d a 755 0:0", "f a/zz 644 0:0", "h file -> a/zz"},
		upperWant:    []string{"d a 755 0:0", "f a/zz 644 0:0"},
		upperDiffers: true,
	}, {
		name: "hardlink to a modified file",
		base: std,
		opts: []Option{WithContentHash()},
		change: func(t testing.TB, d string) {
			must(t, os.WriteFile(filepath.Join(d, "file"), []byte("new data"), 0))
			must(t, os.Link(filepath.Join(d, "file"), filepath.Join(d, "a/zz")))
		},
		want: []string{"d a 755 0:0", "f a/zz 644 0:0", "h file -> a/zz"},
	}, {
		name:   "new file in new nested directories",
		base:   std,
		change: func(t testing.TB, d string) { write(t, d, "a/b/n1/n2/f", "x", 0o644) },
		want:   []string{"d a 755 0:0", "d a/b 755 0:0", "d a/b/n1 755 0:0", "d a/b/n1/n2 755 0:0", "f a/b/n1/n2/f 644 0:0"},
	}, {
		name: "ignored paths",
		base: std,
		opts: []Option{WithIgnore("/proc", "etc/resolv.conf", "dev")},
		change: func(t testing.TB, d string) {
			must(t, os.RemoveAll(filepath.Join(d, "proc/1")))
			write(t, d, "proc/2/status", "y", 0o644)
			write(t, d, "etc/resolv.conf", "nameserver 9.9.9.9\n", 0o644)
			write(t, d, "dev/null", "", 0o666)
		},
	}, {
		name:   "empty directory added",
		base:   std,
		change: func(t testing.TB, d string) { mkdir(t, d, "a/empty") },
		want:   []string{"d a 755 0:0", "d a/empty 755 0:0"},
	}, {
		name:   "empty directory removed",
		base:   std,
		change: func(t testing.TB, d string) { must(t, os.Remove(filepath.Join(d, "emptydir"))) },
		want:   []string{"w .wh.emptydir"},
	}, {
		name:   "rename file",
		base:   std,
		change: func(t testing.TB, d string) { must(t, os.Rename(filepath.Join(d, "a/g"), filepath.Join(d, "a/h"))) },
		want:   []string{"d a 755 0:0", "w a/.wh.g", "f a/h 644 0:0"},
	}, {
		name: "rename directory",
		base: std,
		change: func(t testing.TB, d string) {
			// mv, not rename(2): on an overlay without redirect_dir (as
			// BuildKit mounts it) renaming a lower directory fails with
			// EXDEV and mv copies instead.
			if out, err := exec.Command("mv", filepath.Join(d, "tree/x"), filepath.Join(d, "tree/v")).CombinedOutput(); err != nil {
				t.Fatalf("mv: %v\n%s", err, out)
			}
		},
		want: []string{"d tree 755 0:0", "w tree/.wh.x", "d tree/v 755 0:0", "f tree/v/w 644 0:0", "d tree/v/y 755 0:0", "f tree/v/y/z 644 0:0"},
	}, {
		name: "rename back and forth: identical",
		base: std,
		opts: []Option{WithContentHash()},
		change: func(t testing.TB, d string) {
			must(t, os.Rename(filepath.Join(d, "a/g"), filepath.Join(d, "a/h")))
			must(t, os.Rename(filepath.Join(d, "a/h"), filepath.Join(d, "a/g")))
		},
	}, {
		name:   "file capability added",
		base:   std,
		opts:   []Option{WithContentHash()},
		change: func(t testing.TB, d string) { setCap(t, filepath.Join(d, "bin/tool")) },
		want:   []string{"d bin 755 0:0", "f bin/tool 755 0:0 cap=" + fmt.Sprintf("%x", capNetBindService)},
	}, {
		name: "other extended attributes are not compared",
		base: std,
		opts: []Option{WithContentHash()},
		change: func(t testing.TB, d string) {
			must(t, unix.Lsetxattr(filepath.Join(d, "file"), "user.note", []byte("x"), 0))
		},
	}, {
		name: "character device added",
		base: std,
		change: func(t testing.TB, d string) {
			must(t, unix.Mknod(filepath.Join(d, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		},
		want: []string{"c null 1,3"},
	}, {
		name:   "fifo added",
		base:   std,
		change: func(t testing.TB, d string) { must(t, unix.Mkfifo(filepath.Join(d, "fifo"), 0o644)) },
		want:   []string{"p fifo 644"},
	}}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	for _, tt := range diffCases() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			tt.base(t, dir)
			settle()
			s, err := Take(ctx, dir, tt.opts...)
			must(t, err)
			tt.change(t, dir)
			entries, err := s.Diff(ctx, dir, tt.opts...)
			must(t, err)
			if got := summary(entries); !slices.Equal(got, tt.want) {
				t.Errorf("Diff:\n got %q\nwant %q", got, tt.want)
			}
			// The entries make a valid layer.
			l, err := layer.New(ctx, entries)
			must(t, err)
			if _, err := l.Digest(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// capNetBindService is a VFS_CAP_REVISION_2 security.capability value:
// magic 0x02000000 with the effective flag, cap_net_bind_service (bit 10)
// permitted, nothing inheritable (little endian).
var capNetBindService = string([]byte{
	0x01, 0, 0, 0x02, // magic_etc
	0, 0x04, 0, 0, 0, 0, 0, 0, // data[0]: permitted, inheritable
	0, 0, 0, 0, 0, 0, 0, 0, // data[1]
})

func setCap(t testing.TB, p string) {
	t.Helper()
	must(t, unix.Lsetxattr(p, "security.capability", []byte(capNetBindService), 0))
}

// settle waits longer than the kernel's coarse timestamp granularity, so
// that a change made after Take gets a ctime different from the base's.
func settle() { time.Sleep(20 * time.Millisecond) }

func TestDiffErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, dir string) error
		want string
	}{{
		name: "whiteout name in the tree",
		run: func(t *testing.T, dir string) error {
			s, err := Take(context.Background(), dir)
			must(t, err)
			write(t, dir, "x/.wh.y", "", 0o644)
			_, err = s.Diff(context.Background(), dir)
			return err
		},
		want: "reserved for whiteouts",
	}, {
		name: "ignoring the root",
		run: func(t *testing.T, dir string) error {
			_, err := Take(context.Background(), dir, WithIgnore("/"))
			return err
		},
		want: "not a path below the root",
	}, {
		name: "missing directory",
		run: func(t *testing.T, dir string) error {
			_, err := Take(context.Background(), filepath.Join(dir, "missing"))
			return err
		},
		want: "no such file",
	}, {
		name: "cancelled",
		run: func(t *testing.T, dir string) error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := Take(ctx, dir)
			return err
		},
		want: "context canceled",
	}, {
		name: "file changed between Diff and Open",
		run: func(t *testing.T, dir string) error {
			s, err := Take(context.Background(), dir)
			must(t, err)
			write(t, dir, "f", "four", 0o644)
			entries, err := s.Diff(context.Background(), dir)
			must(t, err)
			write(t, dir, "f", "longer now", 0o644)
			_, err = layer.New(context.Background(), entries)
			return err
		},
		want: "changed since the diff",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.run(t, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// readAll returns the content of an entry.
func readAll(t testing.TB, e layer.Entry) string {
	t.Helper()
	rc, err := e.Open()
	must(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	must(t, err)
	return string(b)
}

func TestDiffContentAndMetadata(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	std(t, dir)
	settle()
	s, err := Take(ctx, dir)
	must(t, err)
	if s.Len() != 21 { // every path below the root; nothing is ignored here
		t.Errorf("Len = %d, want 21", s.Len())
	}
	write(t, dir, "a/g", "new content", 0o640)
	mtime := time.Unix(1800000000, 5)
	must(t, os.Chtimes(filepath.Join(dir, "a/g"), mtime, mtime))
	entries, err := s.Diff(ctx, dir)
	must(t, err)
	if len(entries) != 2 {
		t.Fatalf("got %q", summary(entries))
	}
	e := entries[1]
	if e.Header.Name != "a/g" || e.Header.Size != 11 || e.Header.Mode != 0o640 || !e.Header.ModTime.Equal(mtime) {
		t.Errorf("header %+v", e.Header)
	}
	if got := readAll(t, e); got != "new content" {
		t.Errorf("content %q", got)
	}
	if entries[0].Open != nil {
		t.Errorf("directory entry has an Open")
	}
}

// requireRoot skips a test that chowns files unless it runs as root; under
// CI=true (where .ci/run runs as root) it fails instead.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test chowns files and must run as root under CI=true")
	}
	t.Skip("this test chowns files: run it as root")
}

// TestDiffUpper applies each change of TestDiff through an overlay mount
// (lower = the base tree) and expects DiffUpper to find in the upper
// directory what Diff finds with content hashes.
func TestDiffUpper(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	for _, tt := range diffCases() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			// Not t.TempDir: test names hold commas, which end a mount option.
			tmp, err := os.MkdirTemp("", "diffupper-")
			must(t, err)
			t.Cleanup(func() { os.RemoveAll(tmp) })
			lower, upper, work, merged := filepath.Join(tmp, "l"), filepath.Join(tmp, "u"), filepath.Join(tmp, "w"), filepath.Join(tmp, "m")
			for _, d := range []string{lower, upper, work, merged} {
				must(t, os.Mkdir(d, 0o755))
			}
			tt.base(t, lower)
			settle()
			opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",redirect_dir=off,metacopy=off,index=off"
			must(t, unix.Mount("overlay", merged, "overlay", 0, opts))
			mounted := true
			defer func() {
				if mounted {
					_ = unix.Unmount(merged, unix.MNT_DETACH)
				}
			}()
			tt.change(t, merged)
			must(t, unix.Unmount(merged, 0))
			mounted = false
			entries, err := DiffUpper(ctx, upper, lower, tt.opts...)
			must(t, err)
			want := tt.want
			if tt.upperDiffers {
				want = tt.upperWant
			}
			if got := summary(entries); !slices.Equal(got, want) {
				t.Errorf("DiffUpper:\n got %q\nwant %q", got, want)
			}
			l, err := layer.New(ctx, entries)
			must(t, err)
			if _, err := l.Digest(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// countHashes returns the option that calls onHash with the number of
// files Take has hashed so far, after each one, and the count.
func countHashes(onHash func(n int64)) (Option, *atomic.Int64) {
	var n atomic.Int64
	return func(o *options) error {
		o.hashed = func(string) { onHash(n.Add(1)) }
		return nil
	}, &n
}

// writeFiles writes n small files named from format and their index.
func writeFiles(t *testing.T, dir, format string, n int) {
	t.Helper()
	for i := range n {
		write(t, dir, fmt.Sprintf(format, i), "content", 0o644)
	}
}

// A Take that fails stops hashing: the files still queued for their content
// are not read.
func TestTakeStopsHashingOnError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, "f%03d", 300) // more than hashQueue
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hook, hashed := countHashes(func(n int64) {
		if n == 1 {
			// Let the walk fill the queue, then fail it.
			time.Sleep(200 * time.Millisecond)
			cancel()
		}
		<-ctx.Done() // the other workers wait for the failure
	})
	_, err := Take(ctx, dir, WithContentHash(), hook)
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("got error %v, want context canceled", err)
	}
	if n := hashed.Load(); n > 2*hashWorkers {
		t.Fatalf("%d files hashed after the walk failed at the first, want at most %d", n, 2*hashWorkers)
	}
}

// A walk that fails on its own (a directory gone) stops the hash workers
// too, and its error is the one reported, not the workers' cancellation.
func TestTakeReportsWalkErrorAndStopsHashing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const files = 300 // more than hashQueue: the walk waits for the workers
	writeFiles(t, dir, "a%03d", files)
	write(t, dir, "z/f", "content", 0o644) // walked last
	hook, hashed := countHashes(func(n int64) {
		if n == 1 {
			must(t, os.RemoveAll(filepath.Join(dir, "z"))) // listed already, opened last
		}
		time.Sleep(time.Millisecond) // slower than the walk
	})
	_, err := Take(context.Background(), dir, WithContentHash(), hook)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("got error %v, want the walk's: no such file", err)
	}
	if limit := int64(files - hashQueue/2); hashed.Load() > limit {
		t.Fatalf("%d of %d files hashed after the walk failed, want at most %d", hashed.Load(), files, limit)
	}
}
