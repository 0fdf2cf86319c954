package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// tent is one entry of a test tar stream.
type tent struct {
	hdr  tar.Header
	body string
}

var epoch = time.Unix(1700000000, 0)

func tFile(name, body string, mode int64) tent {
	return tent{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: epoch}, body}
}
func tDir(name string, mode int64) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: epoch}}
}
func tSym(name, target string) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch}}
}
func tLink(name, target string) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: epoch}}
}
func tWh(name string) tent { return tFile(name, "", 0) }
func tFifo(name string) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: 0o600, ModTime: epoch}}
}
func tChar(name string, major, minor int64) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor, ModTime: epoch}}
}

func (e tent) owner(uid, gid int) tent { e.hdr.Uid, e.hdr.Gid = uid, gid; return e }
func (e tent) at(t time.Time) tent {
	e.hdr.ModTime, e.hdr.Format = t, tar.FormatPAX // PAX keeps nanoseconds
	return e
}
func (e tent) mode(m int64) tent { e.hdr.Mode = m; return e }
func (e tent) xattr(k, v string) tent {
	e.hdr.PAXRecords = map[string]string{"SCHILY.xattr." + k: v}
	return e
}

func tarBytes(t testing.TB, ents ...tent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if h.PAXRecords != nil {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing header %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dirTree describes every entry under dir: type, permission bits and content
// or target.
func dirTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		perm := st.Mode & 0o7777
		switch fi.Mode().Type() {
		case 0:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %o %s", perm, b)
		case fs.ModeDir:
			out[rel] = fmt.Sprintf("dir %o", perm)
		case fs.ModeSymlink:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case fs.ModeNamedPipe:
			out[rel] = fmt.Sprintf("fifo %o", perm)
		case fs.ModeDevice | fs.ModeCharDevice:
			out[rel] = fmt.Sprintf("char %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		default:
			out[rel] = "other " + fi.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffTree(got, want map[string]string) string {
	var lines []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			lines = append(lines, fmt.Sprintf("missing %s (%s)", k, w))
		} else if g != w {
			lines = append(lines, fmt.Sprintf("%s: got %q, want %q", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, fmt.Sprintf("unexpected %s (%s)", k, g))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func applyAll(t testing.TB, dir string, layers ...[]byte) (*ExtractReport, error) {
	t.Helper()
	total := &ExtractReport{}
	for i, l := range layers {
		rep, err := Apply(context.Background(), dir, bytes.NewReader(l), WithLayerName(fmt.Sprintf("L%d", i+1)))
		if rep != nil {
			total.add(rep)
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func TestApply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		layers [][]tent
		want   map[string]string
	}{
		{
			name: "entry types",
			layers: [][]tent{{
				tDir("d", 0o750), tFile("d/f", "hi", 0o4755), tSym("d/s", "f"), tLink("d/h", "d/f").mode(0o4755),
				tFifo("p"), tFile("./dot/x", "x", 0o600), tDir("sticky", 0o1777), tFile("g", "", 0o2711),
			}},
			want: map[string]string{
				"d": "dir 750", "d/f": "file 4755 hi", "d/s": "link f", "d/h": "file 4755 hi",
				"p": "fifo 600", "dot": "dir 755", "dot/x": "file 600 x", "sticky": "dir 1777", "g": "file 2711 ",
			},
		},
		{
			name: "whiteouts",
			layers: [][]tent{
				{tFile("a/x", "x", 0o644), tFile("a/y", "y", 0o644), tFile("b", "b", 0o644), tDir("c", 0o755), tFile("c/z", "z", 0o644)},
				{tWh("a/.wh.x"), tWh(".wh.b"), tWh(".wh.c"), tWh(".wh.missing"), tWh("nodir/.wh.x")},
			},
			want: map[string]string{"a": "dir 755", "a/y": "file 644 y"},
		},
		{
			name: "opaque keeps entries of its own layer",
			layers: [][]tent{
				{tFile("a/x", "x", 0o644), tFile("a/sub/z", "z", 0o644), tFile("a/keepdir/k", "k", 0o644), tFile("b/y", "y", 0o644)},
				{tFile("a/new1", "1", 0o644), tDir("a/keepdir", 0o700), tWh("a/.wh..wh..opq"), tFile("a/new2", "2", 0o644)},
			},
			want: map[string]string{
				"a": "dir 755", "a/new1": "file 644 1", "a/new2": "file 644 2", "a/keepdir": "dir 700",
				"b": "dir 755", "b/y": "file 644 y",
			},
		},
		{
			name: "whiteout does not hide its own layer",
			layers: [][]tent{
				{tFile("n", "old", 0o644)},
				{tFile("n", "new", 0o644), tWh(".wh.n")},
			},
			want: map[string]string{"n": "file 644 new"},
		},
		{
			name: "replace file dir symlink",
			layers: [][]tent{
				{tFile("f2d", "f", 0o644), tDir("d2f", 0o755), tFile("d2f/x", "x", 0o644), tDir("d2s", 0o755), tFile("d2s/x", "x", 0o644),
					tSym("s2d", "/etc"), tDir("d2d", 0o755), tFile("d2d/keep", "k", 0o644), tFile("target/t", "t", 0o644)},
				{tDir("f2d", 0o711), tFile("d2f", "now a file", 0o600), tSym("d2s", "target"), tDir("s2d", 0o755), tFile("s2d/in", "i", 0o644),
					tDir("d2d", 0o700)},
			},
			want: map[string]string{
				"f2d": "dir 711", "d2f": "file 600 now a file", "d2s": "link target", "s2d": "dir 755", "s2d/in": "file 644 i",
				"d2d": "dir 700", "d2d/keep": "file 644 k", "target": "dir 755", "target/t": "file 644 t",
			},
		},
		{
			name: "hardlink to an earlier layer",
			layers: [][]tent{
				{tFile("bin/busybox", "bb", 0o755)},
				{tLink("bin/sh", "bin/busybox").mode(0o755), tLink("bin/self", "bin/self")},
			},
			want: map[string]string{"bin": "dir 755", "bin/busybox": "file 755 bb", "bin/sh": "file 755 bb"},
		},
		{
			name: "symlinked parent inside the root",
			layers: [][]tent{
				{tDir("usr/lib", 0o755), tSym("lib", "usr/lib"), tSym("var/run", "/run"), tSym("up", "../../usr")},
				{tFile("lib/x", "x", 0o644), tFile("var/run/pid", "1", 0o644), tFile("up/lib/y", "y", 0o644)},
			},
			want: map[string]string{
				"usr": "dir 755", "usr/lib": "dir 755", "usr/lib/x": "file 644 x", "usr/lib/y": "file 644 y", "lib": "link usr/lib",
				"var": "dir 755", "var/run": "link /run", "run": "dir 755", "run/pid": "file 644 1", "up": "link ../../usr",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "rootfs")
			var layers [][]byte
			for _, l := range tt.layers {
				layers = append(layers, tarBytes(t, l...))
			}
			if _, err := applyAll(t, dir, layers...); err != nil {
				t.Fatal(err)
			}
			if d := diffTree(dirTree(t, dir), tt.want); d != "" {
				t.Errorf("tree differs:\n%s", d)
			}
		})
	}
}

// The "hardlink to an earlier layer" case above needs link targets that
// share the inode: checked here with the metadata.
func TestApplyMetadata(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "rootfs")
	mt := time.Unix(1600000000, 123456789)
	dmt := time.Unix(1500000000, 0)
	l1 := tarBytes(t,
		tDir("d", 0o755).owner(1000, 1001).at(dmt),
		tFile("d/suid", "x", 0o4755).owner(1000, 1001).at(mt),
		tSym("d/sym", "/nowhere").owner(7, 8).at(mt),
		tFile("d/attr", "a", 0o644).xattr("user.ship", "yes"),
		tSym("d/symattr", "attr").xattr("user.ship", "no"),
		tLink("d/hard", "d/suid").owner(1000, 1001).at(mt).mode(0o4755),
		tChar("d/null", 1, 3),
	)
	rep, err := Apply(context.Background(), dir, bytes.NewReader(l1))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		uid, gid uint32
		perm     uint32
		mtime    time.Time
	}{
		{"dir after its content", "d", 1000, 1001, 0o755, dmt},
		{"setuid kept after chown", "d/suid", 1000, 1001, 0o4755, mt},
		{"symlink", "d/sym", 7, 8, 0o777, mt},
		{"hardlink", "d/hard", 1000, 1001, 0o4755, mt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, tt.path), &st); err != nil {
				t.Fatal(err)
			}
			if os.Geteuid() != 0 {
				if rep.SkippedOwners == 0 {
					t.Error("not root, yet no owner reported as skipped")
				}
			} else if st.Uid != tt.uid || st.Gid != tt.gid {
				t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, tt.uid, tt.gid)
			}
			if st.Mode&0o7777 != tt.perm {
				t.Errorf("mode %o, want %o", st.Mode&0o7777, tt.perm)
			}
			if got := time.Unix(st.Mtim.Unix()); !got.Equal(tt.mtime) {
				t.Errorf("mtime %v, want %v", got, tt.mtime)
			}
		})
	}
	t.Run("hardlink shares the inode", func(t *testing.T) {
		t.Parallel()
		a, _ := os.Stat(filepath.Join(dir, "d/suid"))
		b, _ := os.Stat(filepath.Join(dir, "d/hard"))
		if !os.SameFile(a, b) {
			t.Error("d/hard is not a hardlink of d/suid")
		}
	})
	t.Run("xattrs", func(t *testing.T) {
		t.Parallel()
		buf := make([]byte, 16)
		n, err := unix.Lgetxattr(filepath.Join(dir, "d/attr"), "user.ship", buf)
		switch {
		case errors.Is(err, unix.ENOTSUP):
			if rep.SkippedXattrs != 2 {
				t.Errorf("SkippedXattrs = %d on a file system without user xattrs, want 2", rep.SkippedXattrs)
			}
		case err != nil:
			t.Fatal(err)
		default:
			if string(buf[:n]) != "yes" {
				t.Errorf("user.ship = %q", buf[:n])
			}
			// user.* xattrs are not allowed on symlinks.
			if rep.SkippedXattrs != 1 {
				t.Errorf("SkippedXattrs = %d, want 1 (the symlink's)", rep.SkippedXattrs)
			}
		}
	})
	t.Run("device", func(t *testing.T) {
		t.Parallel()
		fi, err := os.Lstat(filepath.Join(dir, "d/null"))
		switch {
		case len(rep.SkippedDevices) == 1 && rep.SkippedDevices[0] == "d/null":
			if err == nil {
				t.Errorf("skipped device exists: %v", fi.Mode())
			}
		case err != nil:
			t.Fatalf("device neither created nor reported: %v", err)
		case fi.Mode().Type() != fs.ModeDevice|fs.ModeCharDevice:
			t.Errorf("d/null is %v", fi.Mode())
		}
	})
}

func TestApplyDevicesSkipped(t *testing.T) {
	t.Parallel()
	layer := tarBytes(t, tChar("dev/null", 1, 3), tFifo("dev/fifo"), tFile("dev/f", "f", 0o644))
	tests := []struct {
		name string
		opts []ExtractOption
		drop bool // drop CAP_MKNOD on the applying thread
	}{
		{"WithoutDevices", []ExtractOption{WithoutDevices()}, false},
		{"mknod not permitted", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.drop {
				// The thread dies with this goroutine: never unlocked.
				runtime.LockOSThread()
				dropCapMknod(t)
			}
			dir := filepath.Join(t.TempDir(), "rootfs")
			rep, err := Apply(context.Background(), dir, bytes.NewReader(layer), tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.SkippedDevices) != 1 || rep.SkippedDevices[0] != "dev/null" {
				t.Errorf("SkippedDevices = %q, want [dev/null]", rep.SkippedDevices)
			}
			want := map[string]string{"dev": "dir 755", "dev/fifo": "fifo 600", "dev/f": "file 644 f"}
			if d := diffTree(dirTree(t, dir), want); d != "" {
				t.Errorf("tree differs:\n%s", d)
			}
		})
	}
}

func dropCapMknod(t *testing.T) {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	data[0].Effective &^= 1 << unix.CAP_MKNOD
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
}

// confinement is a root file system directory alone in its parent, and a
// sentinel file elsewhere that hostile layers aim at.
type confinement struct {
	parent, dir   string
	sentinelDir   string
	sentinel, rel string // absolute path; relative to dir
	before        string
}

func newConfinement(t *testing.T) *confinement {
	t.Helper()
	c := &confinement{parent: t.TempDir(), sentinelDir: t.TempDir()}
	c.dir = filepath.Join(c.parent, "rootfs")
	c.sentinel = filepath.Join(c.sentinelDir, "sentinel")
	if err := os.WriteFile(c.sentinel, []byte("untouched"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(c.sentinel, epoch, epoch); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if c.rel, err = filepath.Rel(c.dir, c.sentinel); err != nil {
		t.Fatal(err)
	}
	c.before = c.describeSentinel(t)
	return c
}

func (c *confinement) describeSentinel(t *testing.T) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(c.sentinel, &st); err != nil {
		t.Fatalf("sentinel: %v", err)
	}
	b, err := os.ReadFile(c.sentinel)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(c.sentinelDir)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%q mode %o owner %d:%d nlink %d mtime %d ino %d entries %d",
		b, st.Mode, st.Uid, st.Gid, st.Nlink, st.Mtim.Nano(), st.Ino, len(entries))
}

func (c *confinement) check(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(c.parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "rootfs" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the root file system's parent holds %q, want only rootfs", names)
	}
	if fi, err := os.Lstat(c.dir); err != nil || !fi.IsDir() {
		t.Errorf("rootfs is no longer a directory: %v", err)
	}
	if got := c.describeSentinel(t); got != c.before {
		t.Errorf("sentinel changed:\n got %s\nwant %s", got, c.before)
	}
}

func TestApplyHostile(t *testing.T) {
	t.Parallel()
	// Placeholders replaced per case: ABS is the sentinel's absolute path
	// without the leading "/", ABSDIR its directory's; REL is the
	// sentinel's path relative to the root file system, RELDIR its
	// directory's.
	tests := []struct {
		name    string
		layers  [][]tent
		wantErr string // "" when the layer applies (inside the root)
		check   func(t *testing.T, c *confinement)
	}{
		{name: "dotdot", layers: [][]tent{{tFile("../x", "pwned", 0o644)}}, wantErr: `entry "../x": path escapes the root filesystem`},
		{name: "dotdot nested", layers: [][]tent{{tFile("a/../../x", "pwned", 0o644)}}, wantErr: `entry "a/../../x": path escapes`},
		{name: "dotdot to the sentinel", layers: [][]tent{{tFile("REL", "pwned", 0o644)}}, wantErr: "path escapes"},
		// Absolute names are relative to the root being built, as in Docker.
		{name: "absolute name", layers: [][]tent{{tFile("/abs", "pwned", 0o644)}},
			check: func(t *testing.T, c *confinement) {
				if _, err := os.Stat(filepath.Join(c.dir, "abs")); err != nil {
					t.Errorf("/abs not extracted inside the root: %v", err)
				}
			}},
		{name: "absolute name of the sentinel", layers: [][]tent{{tFile("/ABS", "pwned", 0o644)}}},
		{name: "dotdot directory", layers: [][]tent{{tDir("../d", 0o755)}}, wantErr: "path escapes"},
		{name: "dotdot symlink", layers: [][]tent{{tSym("../s", "/")}}, wantErr: "path escapes"},
		{
			name:   "absolute symlink parent",
			layers: [][]tent{{tSym("l", "/"), tFile("l/etc/x", "x", 0o644), tFile("l/ABS", "pwned", 0o644)}},
			check: func(t *testing.T, c *confinement) {
				wantFile(t, filepath.Join(c.dir, "etc/x"), "x")
				wantFile(t, filepath.Join(c.dir, c.sentinel), "pwned")
			},
		},
		{
			name:   "nested absolute symlink parent",
			layers: [][]tent{{tDir("a", 0o755), tSym("a/l", "/"), tFile("a/l/x", "x", 0o644), tSym("a/m", "/ABSDIR/"), tFile("a/m/sentinel", "pwned", 0o644)}},
			check: func(t *testing.T, c *confinement) {
				wantFile(t, filepath.Join(c.dir, "x"), "x")
				wantFile(t, filepath.Join(c.dir, c.sentinel), "pwned")
			},
		},
		{
			name:   "absolute symlink parent, two layers",
			layers: [][]tent{{tSym("l", "/ABSDIR")}, {tFile("l/sentinel", "pwned", 0o644), tDir("l/d", 0o755)}},
			check: func(t *testing.T, c *confinement) {
				wantFile(t, filepath.Join(c.dir, c.sentinel), "pwned")
			},
		},
		{
			name:   "relative escaping symlink parent",
			layers: [][]tent{{tSym("l", "../../.."), tFile("l/x", "x", 0o644), tSym("m", "RELDIR"), tFile("m/sentinel", "pwned", 0o644)}},
			check: func(t *testing.T, c *confinement) {
				wantFile(t, filepath.Join(c.dir, "x"), "x")
				// RELDIR climbs to the root then goes down to the sentinel's directory.
				wantFile(t, filepath.Join(c.dir, strings.ReplaceAll(c.rel, "../", "")), "pwned")
			},
		},
		{
			name:   "nested escaping symlinks",
			layers: [][]tent{{tDir("a/b", 0o755), tSym("a/b/up", "../../../../.."), tSym("a/l", "b/up/tmp"), tFile("a/l/x", "x", 0o644)}},
			check:  func(t *testing.T, c *confinement) { wantFile(t, filepath.Join(c.dir, "tmp/x"), "x") },
		},
		{name: "hardlink out", layers: [][]tent{{tLink("h", "../../etc/passwd")}}, wantErr: `entry "h": hardlink to "../../etc/passwd": path escapes`},
		{name: "hardlink to the sentinel", layers: [][]tent{{tLink("h", "REL")}}, wantErr: "path escapes"},
		{name: "hardlink absolute", layers: [][]tent{{tLink("h", "/ABS")}}, wantErr: "no such file"},
		{name: "hardlink through an absolute symlinked dir", layers: [][]tent{{tSym("d", "/ABSDIR"), tLink("h", "d/sentinel")}}, wantErr: "no such file"},
		{name: "hardlink through a relative symlinked dir", layers: [][]tent{{tSym("d", "RELDIR"), tLink("h", "d/sentinel")}}, wantErr: "no such file"},
		{
			name:   "hardlink to a symlink pointing out",
			layers: [][]tent{{tSym("s", "/ABS"), tLink("h", "s"), tFile("s", "pwned", 0o666)}},
			check: func(t *testing.T, c *confinement) {
				if target, err := os.Readlink(filepath.Join(c.dir, "h")); err != nil || target != c.sentinel {
					t.Errorf("h: %q, %v; want a symlink to %s", target, err, c.sentinel)
				}
			},
		},
		{name: "write through a symlink", layers: [][]tent{{tSym("s", "/ABS")}, {tFile("s", "pwned", 0o777), tDir("s", 0o777)}}},
		{name: "symlink loop parent", layers: [][]tent{{tSym("a", "b"), tSym("b", "a"), tFile("a/x", "x", 0o644)}}, wantErr: `entry "a/x": resolving "a": too many levels of symbolic links`},
		{name: "self loop parent", layers: [][]tent{{tSym("l", "l"), tFile("l/x", "x", 0o644)}}, wantErr: "too many levels of symbolic links"},
		{name: "loop through hardlink target", layers: [][]tent{{tSym("l", "./l/"), tLink("h", "l/x")}}, wantErr: "too many levels of symbolic links"},
		{name: "file as parent", layers: [][]tent{{tFile("f", "f", 0o644), tFile("f/x", "x", 0o644)}}, wantErr: "not a directory"},
		{name: "whiteout dotdot", layers: [][]tent{{tWh(".wh...")}}, wantErr: `entry ".wh...": whiteout of "..": path escapes`},
		{name: "whiteout dotdot nested", layers: [][]tent{{tDir("a", 0o755), tWh("a/.wh...")}}, wantErr: "path escapes"},
		{name: "whiteout dot", layers: [][]tent{{tWh("a/.wh..")}}, wantErr: "path escapes"},
		{name: "whiteout escaping name", layers: [][]tent{{tWh("../.wh.sentinel")}}, wantErr: "path escapes"},
		{name: "whiteout through absolute symlink", layers: [][]tent{{tSym("l", "/ABSDIR")}, {tWh("l/.wh.sentinel")}}},
		{name: "whiteout through relative symlink", layers: [][]tent{{tSym("l", "RELDIR")}, {tWh("l/.wh.sentinel"), tWh("l/.wh.rootfs")}}},
		{name: "whiteout of an escaping symlink's name", layers: [][]tent{{tSym("up", "../..")}, {tWh(".wh.up")}}},
		{name: "opaque through absolute symlink", layers: [][]tent{{tSym("l", "/ABSDIR")}, {tWh("l/.wh..wh..opq")}}},
		{name: "opaque through relative symlink", layers: [][]tent{{tSym("l", "RELDIR")}, {tWh("l/.wh..wh..opq")}}},
		{name: "opaque of the root", layers: [][]tent{{tFile("x", "x", 0o644)}, {tWh(".wh..wh..opq")}}},
		{name: "dir entry over a symlink out", layers: [][]tent{{tSym("d", "/ABSDIR")}, {tDir("d", 0o700), tFile("d/sentinel", "pwned", 0o644)}}},
		{name: "root entry", layers: [][]tent{{tDir(".", 0o777).owner(12, 12), tDir("./", 0o777), tDir("/", 0o777)}}},
		{name: "root entry dot", layers: [][]tent{{tDir(".", 0o777).owner(12, 12), tFile("./a/../b", "b", 0o644)}}},
		{name: "fifo out", layers: [][]tent{{tFifo("../fifo")}}, wantErr: "path escapes"},
		{name: "device out", layers: [][]tent{{tChar("../null", 1, 3)}}, wantErr: "path escapes"},
		{name: "device through absolute symlink", layers: [][]tent{{tSym("l", "/ABSDIR"), tChar("l/null", 1, 3)}}},
		{name: "hardlink to a directory", layers: [][]tent{{tDir("d", 0o755), tLink("h", "d")}}, wantErr: `entry "h"`},
		{name: "hardlink to the root", layers: [][]tent{{tLink("h", ".")}}, wantErr: "hardlink to the root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newConfinement(t)
			r := strings.NewReplacer(
				"ABSDIR", strings.TrimPrefix(c.sentinelDir, "/"),
				"ABS", strings.TrimPrefix(c.sentinel, "/"),
				"RELDIR", filepath.Dir(c.rel),
				"REL", c.rel,
			)
			var layers [][]byte
			for _, l := range tt.layers {
				var ents []tent
				for _, e := range l {
					e.hdr.Name = r.Replace(e.hdr.Name)
					e.hdr.Linkname = r.Replace(e.hdr.Linkname)
					ents = append(ents, e)
				}
				layers = append(layers, tarBytes(t, ents...))
			}
			_, err := applyAll(t, c.dir, layers...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Errorf("error on several lines: %q", err)
			case err != nil && !strings.HasPrefix(err.Error(), "layer L"):
				t.Errorf("error %q does not name the layer", err)
			}
			if err != nil && strings.Contains(tt.wantErr, "path escapes") && !errors.Is(err, ErrEscape) {
				t.Errorf("error %v does not wrap ErrEscape", err)
			}
			c.check(t)
			if tt.check != nil && !t.Failed() {
				tt.check(t, c)
			}
		})
	}
}

func wantFile(t *testing.T, p, content string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil || string(b) != content {
		t.Errorf("%s: %q, %v; want %q", p, b, err, content)
	}
}

// gnuSparse returns a tar stream with one old-GNU sparse entry of logical
// size size holding data at offset 0.
func gnuSparse(t *testing.T, name, data string, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatGNU}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	io.WriteString(tw, data)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	blk := b[:512]
	blk[156] = tar.TypeGNUSparse
	copy(blk[386:398], fmt.Sprintf("%011o\x00", 0))
	copy(blk[398:410], fmt.Sprintf("%011o\x00", len(data)))
	blk[482] = 0
	real := blk[483:495]
	clear(real)
	real[0] = 0x80
	binary.BigEndian.PutUint64(real[4:], uint64(size))
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func TestApplyHugeFiles(t *testing.T) {
	t.Parallel()
	const tb = 1 << 40
	truncated := tarBytes(t, tFile("big", "few real bytes", 0o644))
	// Claim 1 TB in the header; the stream holds only the real bytes.
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Mode: 0o644, Size: tb, ModTime: epoch, Format: tar.FormatGNU}); err != nil {
		t.Fatal(err)
	}
	truncated = append(hdr.Bytes()[:512:512], truncated[512:1024]...)
	tests := []struct {
		name     string
		stream   []byte
		wantErr  string
		wantSize int64
	}{
		{"header claims 1 TB, stream ends", truncated, "unexpected EOF", -1},
		{"sparse 1 TB", gnuSparse(t, "sparse", "hello", tb), "sparse file of 1099511627776 bytes", -1},
		{"sparse 64 MB", gnuSparse(t, "sparse", "hello", 64<<20), "", 64 << 20},
		{"zeros become holes", tarBytes(t, tFile("zeros", "head"+strings.Repeat("\x00", 8<<20), 0o644)), "", 8<<20 + 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newConfinement(t)
			start := time.Now()
			_, err := Apply(context.Background(), c.dir, bytes.NewReader(tt.stream), WithLayerName("sha256:feed"))
			if time.Since(start) > 20*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			c.check(t)
			var used int64
			filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
				var st unix.Stat_t
				if err == nil && unix.Lstat(p, &st) == nil {
					used += st.Blocks * 512
					if tt.wantSize >= 0 && d.Type().IsRegular() && st.Size != tt.wantSize {
						t.Errorf("%s: size %d, want %d", p, st.Size, tt.wantSize)
					}
				}
				return nil
			})
			if used > 1<<20 {
				t.Errorf("%d bytes on disk, want at most 1 MiB", used)
			}
		})
	}
}

// memLayer is a v1.Layer over an uncompressed tar stream that records
// whether its readers were closed.
type memLayer struct {
	digest v1.Hash
	open   func() io.ReadCloser
	opened atomic.Int32
	closed atomic.Int32
}

func (m *memLayer) Digest() (v1.Hash, error)            { return m.digest, nil }
func (m *memLayer) DiffID() (v1.Hash, error)            { return m.digest, nil }
func (m *memLayer) Size() (int64, error)                { return -1, nil }
func (m *memLayer) MediaType() (types.MediaType, error) { return types.OCIUncompressedLayer, nil }
func (m *memLayer) Compressed() (io.ReadCloser, error)  { return m.Uncompressed() }
func (m *memLayer) Uncompressed() (io.ReadCloser, error) {
	m.opened.Add(1)
	return &closeRecorder{m.open(), &m.closed}, nil
}

type closeRecorder struct {
	io.ReadCloser
	closed *atomic.Int32
}

func (c *closeRecorder) Close() error { c.closed.Add(1); return c.ReadCloser.Close() }

func tarballLayer(t *testing.T, ents ...tent) v1.Layer {
	t.Helper()
	b := tarBytes(t, ents...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestExtract(t *testing.T) {
	t.Parallel()
	layers := []v1.Layer{
		tarballLayer(t, tFile("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644), tFile("bin/busybox", "bb", 0o755), tFile("tmp/x", "x", 0o644)),
		tarballLayer(t, tLink("bin/sh", "bin/busybox"), tWh("tmp/.wh.x"), tSym("lib", "usr/lib")),
		tarballLayer(t, tFile("lib/libc.so", "c", 0o644), tWh("etc/.wh..wh..opq"), tFile("etc/hostname", "h", 0o644)),
	}
	want := map[string]string{
		"etc": "dir 755", "etc/hostname": "file 644 h", "bin": "dir 755", "bin/busybox": "file 644 bb", "bin/sh": "file 644 bb",
		"tmp": "dir 755", "lib": "link usr/lib", "usr": "dir 755", "usr/lib": "dir 755", "usr/lib/libc.so": "file 644 c",
	}
	for _, n := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprintf("concurrency %d", n), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "rootfs")
			rep, err := Extract(context.Background(), dir, layers, withConcurrency(n))
			if err != nil {
				t.Fatal(err)
			}
			if d := diffTree(dirTree(t, dir), want); d != "" {
				t.Errorf("tree differs:\n%s", d)
			}
			if rep.Entries != 9 || rep.Bytes != int64(len("root:x:0:0::/root:/bin/sh\n")+2+1+1+1) {
				t.Errorf("report %+v", rep)
			}
		})
	}
	t.Run("onto a previous extraction of a prefix", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "rootfs")
		if _, err := Extract(context.Background(), dir, layers[:1]); err != nil {
			t.Fatal(err)
		}
		if _, err := Extract(context.Background(), dir, layers[1:]); err != nil {
			t.Fatal(err)
		}
		if d := diffTree(dirTree(t, dir), want); d != "" {
			t.Errorf("tree differs:\n%s", d)
		}
	})
	t.Run("compressed random layers", func(t *testing.T) {
		t.Parallel()
		var rl []v1.Layer
		for range 4 {
			l, err := random.Layer(1<<20, types.DockerLayer)
			if err != nil {
				t.Fatal(err)
			}
			rl = append(rl, l)
		}
		dir := filepath.Join(t.TempDir(), "rootfs")
		rep, err := Extract(context.Background(), dir, rl)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Bytes != 4<<20 || rep.Entries != 4 {
			t.Errorf("report %+v, want 4 entries of 1 MiB", rep)
		}
		if got := len(dirTree(t, dir)); got != 4 {
			t.Errorf("%d files extracted, want 4", got)
		}
	})
	t.Run("hostile layer named by digest", func(t *testing.T) {
		t.Parallel()
		c := newConfinement(t)
		bad := tarballLayer(t, tFile("ok", "ok", 0o644), tFile("../../etc/passwd", "pwned", 0o644))
		d, err := bad.Digest()
		if err != nil {
			t.Fatal(err)
		}
		_, err = Extract(context.Background(), c.dir, []v1.Layer{layers[0], bad, layers[2]})
		want := fmt.Sprintf(`layer %s: entry "../../etc/passwd": path escapes the root filesystem`, d)
		if err == nil || err.Error() != want {
			t.Errorf("error %v, want %s", err, want)
		}
		c.check(t)
	})
}

// endless writes tar entries, slowly, until its reader is closed.
func endless() io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		body := strings.Repeat("x", 1000)
		for i := 0; ; i++ {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("f%d", i%100), Mode: 0o644, Size: int64(len(body))}); err != nil {
				return
			}
			if _, err := io.WriteString(tw, body); err != nil {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	return pr
}

func TestExtractCancel(t *testing.T) {
	t.Parallel()
	var layers []*memLayer
	for i := range 5 {
		m := &memLayer{digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064d", i)}}
		m.open = endless
		layers = append(layers, m)
	}
	var vl []v1.Layer
	for _, l := range layers {
		vl = append(vl, l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "rootfs")
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := Extract(ctx, dir, vl)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want the context's", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Extract did not return 5s after its context was cancelled")
	}
	t.Logf("returned after %v", time.Since(start))
	opened := 0
	for i, l := range layers {
		o, c := l.opened.Load(), l.closed.Load()
		opened += int(o)
		if o != c {
			t.Errorf("layer %d: opened %d, closed %d: a fetch outlived Extract", i, o, c)
		}
	}
	if opened != 3 {
		t.Errorf("%d layers opened, want 3 (the bound)", opened)
	}
}

func BenchmarkExtract(b *testing.B) {
	// A 50 MB layer: 500 files of 100 KB in 20 directories, pseudo-random
	// content (not zeros, which become holes).
	content := make([]byte, 100<<10)
	for i := range content {
		content[i] = byte(i*7 + i>>8)
	}
	var ents []tent
	for d := range 20 {
		ents = append(ents, tDir(fmt.Sprintf("d%d", d), 0o755))
		for f := range 25 {
			ents = append(ents, tFile(fmt.Sprintf("d%d/f%d", d, f), string(content), 0o644))
		}
	}
	data := tarBytes(b, ents...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	parent := b.TempDir()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(parent, fmt.Sprint(i))
		if _, err := Extract(context.Background(), dir, []v1.Layer{l}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}

func BenchmarkApplySmallFiles(b *testing.B) {
	// 10,000 files of 1 KB in 100 directories: the per-entry cost.
	var ents []tent
	for d := range 100 {
		for f := range 100 {
			ents = append(ents, tFile(fmt.Sprintf("usr/share/d%d/f%d", d, f), strings.Repeat("y", 1024), 0o644))
		}
	}
	data := tarBytes(b, ents...)
	parent := b.TempDir()
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(parent, fmt.Sprint(i))
		if _, err := Apply(context.Background(), dir, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}

// failingEnd is a compressed stream whose reader fails once it reaches
// the end, as a registry fetch does when the digest does not match.
type failingEnd struct {
	v1.Layer
}

func (f failingEnd) Compressed() (io.ReadCloser, error) {
	rc, err := f.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return &errAtEOF{rc: rc}, nil
}

type errAtEOF struct{ rc io.ReadCloser }

func (e *errAtEOF) Read(p []byte) (int, error) {
	n, err := e.rc.Read(p)
	if err == io.EOF {
		return n, errors.New("digest mismatch")
	}
	return n, err
}
func (e *errAtEOF) Close() error { return e.rc.Close() }

// TestExtractVerifiesDigest: a gzip layer is read to the end of its
// compressed stream, so that a digest mismatch found there fails the
// extraction.
func TestExtractVerifiesDigest(t *testing.T) {
	t.Parallel()
	l := tarballLayer(t, tFile("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644))
	if mt, err := l.MediaType(); err != nil || (mt != types.DockerLayer && mt != types.OCILayer) {
		t.Fatalf("fixture layer media type %v %v: not gzip", mt, err)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	if _, err := Extract(context.Background(), dir, []v1.Layer{l}); err != nil {
		t.Fatalf("intact layer: %v", err)
	}
	dir = filepath.Join(t.TempDir(), "rootfs")
	_, err := Extract(context.Background(), dir, []v1.Layer{failingEnd{l}})
	if err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Errorf("extraction of a layer whose digest fails: err = %v", err)
	}
}
