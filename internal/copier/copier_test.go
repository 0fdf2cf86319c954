package copier

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/intesys/ship-action/internal/layer"
)

// writeTree creates files under dir. A value "dir" makes a directory,
// "link:T" a symlink to T, anything else a file with that content (0644).
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		v := files[n]
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case v == "dir":
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(v, "link:"):
			if err := os.Symlink(strings.TrimPrefix(v, "link:"), p); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// summary renders entries as "name type mode uid:gid [->link] [=content]".
func summary(t *testing.T, es []layer.Entry) []string {
	t.Helper()
	out := make([]string, 0, len(es))
	for _, e := range es {
		h := e.Header
		typ := map[byte]string{tar.TypeReg: "f", tar.TypeDir: "d", tar.TypeSymlink: "l", tar.TypeLink: "h", tar.TypeChar: "c", tar.TypeFifo: "p"}[h.Typeflag]
		s := fmt.Sprintf("%s %s %04o %d:%d", h.Name, typ, h.Mode, h.Uid, h.Gid)
		if h.Linkname != "" {
			s += " ->" + h.Linkname
		}
		if h.Typeflag == tar.TypeReg {
			if e.Open == nil {
				t.Fatalf("%s: regular file without Open", h.Name)
			}
			rc, err := e.Open()
			if err != nil {
				t.Fatalf("opening %s: %v", h.Name, err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("reading %s: %v", h.Name, err)
			}
			if int64(len(b)) != h.Size {
				t.Fatalf("%s: read %d bytes, header says %d", h.Name, len(b), h.Size)
			}
			s += " =" + string(b)
		} else if e.Open != nil {
			t.Fatalf("%s: non-regular entry with Open", h.Name)
		}
		if strings.HasPrefix(h.Name, "/") || strings.HasSuffix(h.Name, "/") {
			t.Fatalf("bad entry name %q", h.Name)
		}
		out = append(out, s)
	}
	return out
}

// statFS is a Target that records every Stat. It is only an fs.StatFS
// (no fs.ReadLinkFS), so Plan cannot resolve symlinks in it.
type statFS struct {
	m     fstest.MapFS
	mu    sync.Mutex
	calls []string
}

func (s *statFS) Open(name string) (fs.File, error) { return s.m.Open(name) }

func (s *statFS) Stat(name string) (fs.FileInfo, error) {
	s.mu.Lock()
	s.calls = append(s.calls, name)
	s.mu.Unlock()
	return s.m.Stat(name)
}

// linkFS is a Target with symlinks that records Stat and Lstat calls.
type linkFS struct {
	statFS
	lstats []string
}

func (l *linkFS) Lstat(name string) (fs.FileInfo, error) {
	l.mu.Lock()
	l.lstats = append(l.lstats, name)
	l.mu.Unlock()
	return l.m.Lstat(name)
}

func (l *linkFS) ReadLink(name string) (string, error) { return l.m.ReadLink(name) }

func TestPlanDestThroughSymlinks(t *testing.T) {
	t.Parallel()
	link := func(to string) *fstest.MapFile {
		return &fstest.MapFile{Mode: fs.ModeSymlink | 0o777, Data: []byte(to)}
	}
	dir := &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	target := fstest.MapFS{
		"usr":                  dir,
		"usr/bin":              dir,
		"usr/share":            dir,
		"bin":                  link("usr/bin"),
		"etc/localtime":        link("/usr/share/zoneinfo/UTC"),
		"var/run":              link("../run"),
		"loop":                 link("loop"),
		"usr/share/zoneinfo":   dir,
		"usr/share/zoneinfo/U": &fstest.MapFile{Data: []byte("u")},
	}
	tests := []struct {
		name    string
		req     Request
		want    []string
		wantErr string
	}{
		{name: "merged usr", req: Request{Sources: []string{"a.txt"}, Dest: "/bin/"}, want: []string{"usr d 0755 0:0", "usr/bin d 0755 0:0", "usr/bin/a.txt f 0644 0:0 =a"}},
		{name: "merged usr without slash", req: Request{Sources: []string{"a.txt"}, Dest: "/bin"}, want: []string{"usr d 0755 0:0", "usr/bin d 0755 0:0", "usr/bin/a.txt f 0644 0:0 =a"}},
		{name: "directory into a symlinked directory", req: Request{Sources: []string{"d/sub"}, Dest: "/bin/tools/"}, want: []string{"usr d 0755 0:0", "usr/bin d 0755 0:0", "usr/bin/tools d 0755 0:0", "usr/bin/tools/y f 0644 0:0 =y"}},
		{name: "file over a symlink writes its target", req: Request{Sources: []string{"a.txt"}, Dest: "/etc/localtime"}, want: []string{
			"usr d 0755 0:0", "usr/share d 0755 0:0", "usr/share/zoneinfo d 0755 0:0", "usr/share/zoneinfo/UTC f 0644 0:0 =a",
		}},
		{name: "relative symlink with dotdot", req: Request{Sources: []string{"a.txt"}, Dest: "/var/run/x.pid"}, want: []string{"run d 0755 0:0", "run/x.pid f 0644 0:0 =a"}},
		{
			name: "chown parents are created on the resolved path",
			req:  Request{Sources: []string{"a.txt"}, Dest: "/bin/new/", Chown: &Owner{UID: 1, GID: 1}},
			want: []string{"usr d 0755 0:0", "usr/bin d 0755 0:0", "usr/bin/new d 0755 1:1", "usr/bin/new/a.txt f 0644 1:1 =a"},
		},
		{name: "link does not look", req: Request{Sources: []string{"a.txt"}, Dest: "/bin/", Link: true}, want: []string{"bin d 0755 0:0", "bin/a.txt f 0644 0:0 =a"}},
		{name: "literal without FollowDestSymlinks", req: Request{Sources: []string{"a.txt"}, Dest: "/bin/", FollowDestSymlinks: false}, want: []string{"bin d 0755 0:0", "bin/a.txt f 0644 0:0 =a"}},
		{name: "symlink loop", req: Request{Sources: []string{"a.txt"}, Dest: "/loop/x"}, wantErr: "too many levels of symbolic links"},
	}
	dirp := t.TempDir()
	writeTree(t, dirp, standardContext)
	c, err := OpenContext(dirp, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := &linkFS{statFS: statFS{m: target}}
			req := tc.req
			req.Context, req.Target = c, tg
			literal := strings.HasPrefix(tc.name, "literal")
			req.FollowDestSymlinks = !literal
			got, err := Plan(context.Background(), req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := summary(t, got); !slices.Equal(s, tc.want) {
				t.Errorf("entries:\n got %q\nwant %q", s, tc.want)
			}
			if req.Link && (len(tg.lstats) != 0 || len(tg.calls) != 0) {
				t.Errorf("looked at the target: Lstat %q, Stat %q", tg.lstats, tg.calls)
			}
			if d := duplicates(tg.lstats); d != nil {
				t.Errorf("Lstat called more than once for %q", d)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// dirWith is a directory of a Target whose Sys() is a tar header, as in an
// image's file system: mode holds the tar permission and special bits.
func dirWith(mode int64, uid, gid int) *fstest.MapFile {
	m := fs.ModeDir | fs.FileMode(mode&0o777)
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	return &fstest.MapFile{Mode: m, Sys: &tar.Header{Typeflag: tar.TypeDir, Mode: mode, Uid: uid, Gid: gid}}
}

// duplicates returns the names that occur more than once in names.
func duplicates(names []string) []string {
	seen := map[string]int{}
	var out []string
	for _, n := range names {
		if seen[n]++; seen[n] == 2 {
			out = append(out, n)
		}
	}
	return out
}

// standardContext is the context most cases copy from.
var standardContext = map[string]string{
	"a.txt":              "a",
	"b.txt":              "b",
	"home.txt":           "h1",
	"home.md":            "h2",
	"hom.py":             "p",
	"d/x":                "x",
	"d/sub/y":            "y",
	"d/link":             "link:/etc/passwd",
	"d/rel":              "link:x",
	"d/notes.md":         "n",
	"d/keep.md":          "k",
	"src/one/x":          "1",
	"src/two/x":          "2",
	"src/two/z":          "z",
	"tolink":             "link:a.txt",
	"todir":              "link:d/sub",
	"evil":               "link:/etc/passwd",
	"climb":              "link:../../../../etc/passwd",
	"sub/climb":          "link:../../x",
	"empty":              "dir",
	"withpy/app.py":      "app",
	"withpy/lib/util.py": "util",
	"hl/m":               "hard", // hl/a and hl/z are hard links to it
}

func TestPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		req       Request
		target    fstest.MapFS // nil: no Target
		want      []string
		wantErr   string
		wantStats []string // nil: not checked; empty: no Stat at all
	}{
		{
			name:      "file to dir with slash",
			req:       Request{Sources: []string{"a.txt"}, Dest: "/app/"},
			target:    fstest.MapFS{},
			want:      []string{"app d 0755 0:0", "app/a.txt f 0644 0:0 =a"},
			wantStats: []string{"app"},
		},
		{
			name:      "file to path without slash becomes that file",
			req:       Request{Sources: []string{"a.txt"}, Dest: "/app/renamed"},
			target:    fstest.MapFS{},
			want:      []string{"app d 0755 0:0", "app/renamed f 0644 0:0 =a"},
			wantStats: []string{"app/renamed", "app"},
		},
		{
			name:      "file to existing directory without slash lands inside",
			req:       Request{Sources: []string{"a.txt"}, Dest: "/app"},
			target:    fstest.MapFS{"app": {Mode: fs.ModeDir | 0o755}},
			want:      []string{"app d 0755 0:0", "app/a.txt f 0644 0:0 =a"},
			wantStats: []string{"app"},
		},
		{
			name: "relative dest is relative to workdir",
			req:  Request{Sources: []string{"a.txt"}, Dest: "conf/", WorkDir: "/srv"},
			want: []string{"srv d 0755 0:0", "srv/conf d 0755 0:0", "srv/conf/a.txt f 0644 0:0 =a"},
		},
		{
			name: "dot dest is the workdir as a directory",
			req:  Request{Sources: []string{"a.txt"}, Dest: ".", WorkDir: "/srv"},
			want: []string{"srv d 0755 0:0", "srv/a.txt f 0644 0:0 =a"},
		},
		{
			name:      "directory copies its contents not itself",
			req:       Request{Sources: []string{"d"}, Dest: "/dst"},
			target:    fstest.MapFS{},
			wantStats: []string{"dst"},
			want: []string{
				"dst d 0755 0:0",
				"dst/keep.md f 0644 0:0 =k",
				"dst/link l 0777 0:0 ->/etc/passwd",
				"dst/notes.md f 0644 0:0 =n",
				"dst/rel l 0777 0:0 ->x",
				"dst/sub d 0755 0:0",
				"dst/sub/y f 0644 0:0 =y",
				"dst/x f 0644 0:0 =x",
			},
		},
		{
			name: "dot source copies the whole context into the workdir",
			req:  Request{Sources: []string{"."}, Dest: ".", WorkDir: "/app", Excludes: []string{"d", "src", "sub", "withpy", "*link", "todir", "evil", "climb", "empty", "hl"}},
			want: []string{
				"app d 0755 0:0",
				"app/a.txt f 0644 0:0 =a",
				"app/b.txt f 0644 0:0 =b",
				"app/hom.py f 0644 0:0 =p",
				"app/home.md f 0644 0:0 =h2",
				"app/home.txt f 0644 0:0 =h1",
			},
		},
		{
			name: "dot slash source is the context root",
			req:  Request{Sources: []string{"./"}, Dest: "/app/", Excludes: []string{"*", "!a.txt"}},
			want: []string{"app d 0755 0:0", "app/a.txt f 0644 0:0 =a"},
		},
		{
			name: "several sources into a directory",
			req:  Request{Sources: []string{"a.txt", "b.txt", "d/sub"}, Dest: "/many/"},
			want: []string{
				"many d 0755 0:0",
				"many/a.txt f 0644 0:0 =a",
				"many/b.txt f 0644 0:0 =b",
				"many/y f 0644 0:0 =y",
			},
		},
		{
			name:   "several sources without slash overwrite one file as BuildKit does",
			req:    Request{Sources: []string{"a.txt", "b.txt"}, Dest: "/multi"},
			target: fstest.MapFS{},
			want:   []string{"multi f 0644 0:0 =b"},
		},
		{
			name: "glob in the root",
			req:  Request{Sources: []string{"*.txt"}, Dest: "/g/"},
			want: []string{"g d 0755 0:0", "g/a.txt f 0644 0:0 =a", "g/b.txt f 0644 0:0 =b", "g/home.txt f 0644 0:0 =h1"},
		},
		{
			name: "glob in a middle element",
			req:  Request{Sources: []string{"src/*/x"}, Dest: "/g/"},
			want: []string{"g d 0755 0:0", "g/x f 0644 0:0 =2"},
		},
		{
			name: "glob matching directories copies their contents",
			req:  Request{Sources: []string{"src/t*"}, Dest: "/g/"},
			want: []string{"g d 0755 0:0", "g/x f 0644 0:0 =2", "g/z f 0644 0:0 =z"},
		},
		{
			name: "glob without matches copies nothing as BuildKit does",
			req:  Request{Sources: []string{"*.nothing"}, Dest: "/g/"},
			want: []string{},
		},
		{
			name:    "missing source",
			req:     Request{Sources: []string{"nope"}, Dest: "/x/"},
			wantErr: `COPY failed: file not found in build context: "nope"`,
		},
		{
			name:    "parent path outside context",
			req:     Request{Sources: []string{"../x"}, Dest: "/x/"},
			wantErr: "COPY source ../x is outside the build context",
		},
		{
			name:    "symlink to an absolute path",
			req:     Request{Sources: []string{"evil"}, Dest: "/x/"},
			wantErr: "COPY source evil is outside the build context",
		},
		{
			name:    "symlink climbing past the root",
			req:     Request{Sources: []string{"climb"}, Dest: "/x/"},
			wantErr: "COPY source climb is outside the build context",
		},
		{
			name:    "symlink in a subdirectory climbing past the root",
			req:     Request{Sources: []string{"sub/climb"}, Dest: "/x/"},
			wantErr: "COPY source sub/climb is outside the build context",
		},
		{
			name: "source symlink to a file is followed",
			req:  Request{Sources: []string{"tolink"}, Dest: "/x/"},
			want: []string{"x d 0755 0:0", "x/tolink f 0644 0:0 =a"},
		},
		{
			name: "source symlink to a directory copies its contents",
			req:  Request{Sources: []string{"todir"}, Dest: "/x"},
			want: []string{"x d 0755 0:0", "x/y f 0644 0:0 =y"},
		},
		{
			name: "hard links within a source stay links to the first name",
			req:  Request{Sources: []string{"hl"}, Dest: "/h/"},
			want: []string{"h d 0755 0:0", "h/a f 0644 0:0 =hard", "h/m h 0644 0:0 ->h/a", "h/z h 0644 0:0 ->h/a"},
		},
		{
			name: "hard links across sources are copies",
			req:  Request{Sources: []string{"hl/m", "hl/z"}, Dest: "/h/"},
			want: []string{"h d 0755 0:0", "h/m f 0644 0:0 =hard", "h/z f 0644 0:0 =hard"},
		},
		{
			name: "leading slash and trailing slash on the source are ignored",
			req:  Request{Sources: []string{"/d/sub/"}, Dest: "/x/"},
			want: []string{"x d 0755 0:0", "x/y f 0644 0:0 =y"},
		},
		{
			name: "exclude inside a directory",
			req:  Request{Sources: []string{"d"}, Dest: "/x/", Excludes: []string{"*.md", "link", "rel"}},
			want: []string{"x d 0755 0:0", "x/sub d 0755 0:0", "x/sub/y f 0644 0:0 =y", "x/x f 0644 0:0 =x"},
		},
		{
			name: "exclude with negation",
			req:  Request{Sources: []string{"d"}, Dest: "/x/", Excludes: []string{"*", "!keep.md"}},
			want: []string{"x d 0755 0:0", "x/keep.md f 0644 0:0 =k"},
		},
		{
			name: "exclude of an excluded directory brought back by negation",
			req:  Request{Sources: []string{"withpy"}, Dest: "/x/", Excludes: []string{"lib", "!lib/util.py", "app.py"}},
			want: []string{"x d 0755 0:0", "x/lib d 0755 0:0", "x/lib/util.py f 0644 0:0 =util"},
		},
		{
			name: "exclude does not apply to files matched by a wildcard, as in BuildKit",
			req:  Request{Sources: []string{"hom*"}, Dest: "/mydir/", Excludes: []string{"*.txt", "*.md"}},
			want: []string{
				"mydir d 0755 0:0",
				"mydir/hom.py f 0644 0:0 =p",
				"mydir/home.md f 0644 0:0 =h2",
				"mydir/home.txt f 0644 0:0 =h1",
			},
		},
		{
			name: "exclude applies inside directories matched by a wildcard",
			req:  Request{Sources: []string{"with*"}, Dest: "/w/", Excludes: []string{"lib"}},
			want: []string{"w d 0755 0:0", "w/app.py f 0644 0:0 =app"},
		},
		{
			name:      "chown from context and missing parents owned by the user",
			req:       Request{Sources: []string{"a.txt"}, Dest: "/usr/local/app/", Chown: &Owner{UID: 1000, GID: 1001}},
			target:    fstest.MapFS{"usr": {Mode: fs.ModeDir | 0o755}},
			wantStats: []string{"usr", "usr/local", "usr/local/app"},
			want: []string{
				"usr d 0755 0:0",
				"usr/local d 0755 1000:1001",
				"usr/local/app d 0755 1000:1001",
				"usr/local/app/a.txt f 0644 1000:1001 =a",
			},
		},
		{
			name:      "existing destination keeps its metadata with chown",
			req:       Request{Sources: []string{"d/sub"}, Dest: "/app/", Chown: &Owner{UID: 5, GID: 6}},
			target:    fstest.MapFS{"app": dirWith(0o750, 1, 2)},
			wantStats: []string{"app"},
			want:      []string{"app d 0750 1:2", "app/y f 0644 5:6 =y"},
		},
		{
			name:      "copy into an existing /tmp keeps its 1777",
			req:       Request{Sources: []string{"d/sub"}, Dest: "/tmp/"},
			target:    fstest.MapFS{"tmp": dirWith(0o1777, 0, 0)},
			wantStats: []string{"tmp"},
			want:      []string{"tmp d 1777 0:0", "tmp/y f 0644 0:0 =y"},
		},
		{
			name:      "existing parents keep their owner and mode",
			req:       Request{Sources: []string{"a.txt"}, Dest: "/home/app/"},
			target:    fstest.MapFS{"home": dirWith(0o755, 0, 0), "home/app": dirWith(0o750, 1000, 1000)},
			wantStats: []string{"home", "home/app"},
			want:      []string{"home d 0755 0:0", "home/app d 0750 1000:1000", "home/app/a.txt f 0644 0:0 =a"},
		},
		{
			name:      "missing nested parents are created 0755 root",
			req:       Request{Sources: []string{"a.txt"}, Dest: "/opt/n1/n2"},
			target:    fstest.MapFS{"opt": dirWith(0o700, 3, 4)},
			wantStats: []string{"opt/n1/n2", "opt", "opt/n1"},
			want:      []string{"opt d 0700 3:4", "opt/n1 d 0755 0:0", "opt/n1/n2 f 0644 0:0 =a"},
		},
		{
			name:      "chown owns the created parents, not the existing ones",
			req:       Request{Sources: []string{"d/sub"}, Dest: "/srv/new/deep/", Chown: &Owner{UID: 1000, GID: 1001}},
			target:    fstest.MapFS{"srv": dirWith(0o755, 0, 0)},
			wantStats: []string{"srv", "srv/new", "srv/new/deep"},
			want:      []string{"srv d 0755 0:0", "srv/new d 0755 1000:1001", "srv/new/deep d 0755 1000:1001", "srv/new/deep/y f 0644 1000:1001 =y"},
		},
		{
			name:   "created parents inherit a setgid parent's group and bit",
			req:    Request{Sources: []string{"a.txt"}, Dest: "/srv/sub/deeper/"},
			target: fstest.MapFS{"srv": dirWith(0o2775, 1234, 5678)},
			want: []string{
				"srv d 2775 1234:5678",
				"srv/sub d 2755 0:5678",
				"srv/sub/deeper d 2755 0:5678",
				"srv/sub/deeper/a.txt f 0644 0:0 =a",
			},
		},
		{
			name:   "chowned parents keep the setgid bit but take the chown group",
			req:    Request{Sources: []string{"a.txt"}, Dest: "/srv/sub/", Chown: &Owner{UID: 7, GID: 8}},
			target: fstest.MapFS{"srv": dirWith(0o2775, 1234, 5678)},
			want:   []string{"srv d 2775 1234:5678", "srv/sub d 2755 7:8", "srv/sub/a.txt f 0644 7:8 =a"},
		},
		{
			name:      "a parent that is a file is replaced by a created directory",
			req:       Request{Sources: []string{"a.txt"}, Dest: "/f/x/"},
			target:    fstest.MapFS{"f": {Data: []byte("file"), Mode: 0o600}},
			wantStats: []string{"f", "f/x"},
			want:      []string{"f d 0755 0:0", "f/x d 0755 0:0", "f/x/a.txt f 0644 0:0 =a"},
		},
		{
			name:      "empty directory to a missing destination creates it",
			req:       Request{Sources: []string{"empty"}, Dest: "/e/f"},
			target:    fstest.MapFS{},
			wantStats: []string{"e", "e/f"},
			want:      []string{"e d 0755 0:0", "e/f d 0755 0:0"},
		},
		{
			name:      "empty directory to an existing destination adds nothing",
			req:       Request{Sources: []string{"empty"}, Dest: "/e"},
			target:    fstest.MapFS{"e": {Mode: fs.ModeDir | 0o700}},
			wantStats: []string{"e"},
			want:      []string{},
		},
		{
			name: "chown directory copy",
			req:  Request{Sources: []string{"d/sub"}, Dest: "/o", Chown: &Owner{UID: 5, GID: 6}},
			want: []string{"o d 0755 5:6", "o/y f 0644 5:6 =y"},
		},
		{
			name: "chmod applies to files, directories and created directories but not symlinks",
			req:  Request{Sources: []string{"d"}, Dest: "/m/n", Chmod: ptr(fs.FileMode(0o600)), Excludes: []string{"*.md"}},
			want: []string{
				"m d 0600 0:0",
				"m/n d 0600 0:0",
				"m/n/link l 0777 0:0 ->/etc/passwd",
				"m/n/rel l 0777 0:0 ->x",
				"m/n/sub d 0600 0:0",
				"m/n/sub/y f 0600 0:0 =y",
				"m/n/x f 0600 0:0 =x",
			},
		},
		{
			name: "chmod with setuid in octal",
			req:  Request{Sources: []string{"a.txt"}, Dest: "/", Chmod: ptr(fs.FileMode(0o4755))},
			want: []string{"a.txt f 4755 0:0 =a"},
		},
		{
			name:      "link emits all parents and never looks at the target",
			req:       Request{Sources: []string{"a.txt"}, Dest: "/usr/bin", Link: true},
			target:    fstest.MapFS{"usr": dirWith(0o2700, 5, 5), "usr/bin": {Mode: fs.ModeDir | 0o755}},
			wantStats: []string{},
			want:      []string{"usr d 0755 0:0", "usr/bin f 0644 0:0 =a"},
		},
		{
			name:      "link with chmod is an ordinary copy",
			req:       Request{Sources: []string{"a.txt"}, Dest: "/usr/bin", Link: true, Chmod: ptr(fs.FileMode(0o755))},
			target:    fstest.MapFS{"usr": dirWith(0o755, 0, 0), "usr/bin": {Mode: fs.ModeDir | 0o755}},
			wantStats: []string{"usr/bin", "usr"},
			want:      []string{"usr d 0755 0:0", "usr/bin d 0755 0:0", "usr/bin/a.txt f 0755 0:0 =a"},
		},
		{
			name:    "URL in COPY",
			req:     Request{Sources: []string{"https://example.invalid/x"}, Dest: "/x/"},
			wantErr: "source can't be a URL for COPY",
		},
		{
			name:    "checksum in COPY",
			req:     Request{Sources: []string{"a.txt"}, Dest: "/x/", Checksum: "sha256:00"},
			wantErr: "checksum can't be specified for COPY",
		},
		{
			name:    "ADD checksum for a local file",
			req:     Request{Sources: []string{"a.txt"}, Dest: "/x/", Checksum: "sha256:00", Add: true},
			wantErr: "checksum requires HTTP(S) sources",
		},
		{
			name: "ADD of a plain file copies it",
			req:  Request{Sources: []string{"a.txt"}, Dest: "/x/", Add: true},
			want: []string{"x d 0755 0:0", "x/a.txt f 0644 0:0 =a"},
		},
	}
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "ctx"), standardContext)
	for _, n := range []string{"hl/z", "hl/a"} {
		if err := os.Link(filepath.Join(dir, "ctx", "hl", "m"), filepath.Join(dir, "ctx", filepath.FromSlash(n))); err != nil {
			t.Fatal(err)
		}
	}
	bctx, err := OpenContext(filepath.Join(dir, "ctx"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bctx.Close() })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := tc.req
			req.Context = bctx
			var target *statFS
			if tc.target != nil {
				target = &statFS{m: tc.target}
				req.Target = target
			}
			got, err := Plan(context.Background(), req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if s := summary(t, got); !slices.Equal(s, tc.want) {
				t.Errorf("entries:\n got %q\nwant %q", s, tc.want)
			}
			if tc.wantStats != nil && !slices.Equal(target.calls, tc.wantStats) && !(len(target.calls) == 0 && len(tc.wantStats) == 0) {
				t.Errorf("Target.Stat calls = %q, want %q", target.calls, tc.wantStats)
			}
			if target != nil {
				if d := duplicates(target.calls); d != nil {
					t.Errorf("Target.Stat called more than once for %q", d)
				}
			}
		})
	}
}

func TestPlanFrom(t *testing.T) {
	t.Parallel()
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	hdr := func(uid, gid int) *tar.Header { return &tar.Header{Uid: uid, Gid: gid} }
	from := fstest.MapFS{
		"usr/bin/tool":   {Data: []byte("tool"), Mode: 0o755, ModTime: mtime, Sys: hdr(1000, 1000)},
		"usr/bin":        {Mode: fs.ModeDir | 0o755, Sys: hdr(0, 0)},
		"bin":            {Data: []byte("/usr/bin"), Mode: fs.ModeSymlink | 0o777, Sys: hdr(0, 0)},
		"app/data/f":     {Data: []byte("f"), Mode: 0o640, Sys: hdr(33, 33)},
		"app/data":       {Mode: fs.ModeDir | 0o750, Sys: hdr(33, 33)},
		"app/data/l":     {Data: []byte("../../etc/x"), Mode: fs.ModeSymlink | 0o777, Sys: hdr(33, 33)},
		"app/up":         {Data: []byte("../../../../usr/bin/tool"), Mode: fs.ModeSymlink | 0o777, Sys: hdr(0, 0)},
		"dev/null":       {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Sys: &tar.Header{Devmajor: 1, Devminor: 3}},
		"app/suid":       {Data: []byte("s"), Mode: fs.ModeSetuid | 0o755, Sys: hdr(0, 0)},
		"etc/caps":       {Data: []byte("c"), Mode: 0o755, Sys: &tar.Header{PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "v", "other": "x"}}},
		"etc/outofscope": {Data: []byte("o"), Mode: 0o644},
		"lk/l644":        {Data: []byte("../etc/outofscope"), Mode: fs.ModeSymlink | 0o644, Sys: hdr(0, 0)},
	}
	tests := []struct {
		name    string
		req     Request
		want    []string
		wantErr string
	}{
		{
			name: "keeps uid gid and follows absolute symlinks inside the root",
			req:  Request{Sources: []string{"/bin/tool"}, Dest: "/out/"},
			want: []string{"out d 0755 0:0", "out/tool f 0755 1000:1000 =tool"},
		},
		{
			name: "dotdot in a symlink stays at the root",
			req:  Request{Sources: []string{"/app/up"}, Dest: "/o"},
			want: []string{"o f 0755 1000:1000 =tool"},
		},
		{
			name: "directory keeps owners, modes and inner symlinks",
			req:  Request{Sources: []string{"/app/data"}, Dest: "/d/"},
			want: []string{"d d 0755 0:0", "d/f f 0640 33:33 =f", "d/l l 0777 33:33 ->../../etc/x"},
		},
		{
			name: "chown overrides source owner",
			req:  Request{Sources: []string{"/app/data/f"}, Dest: "/f", Chown: &Owner{UID: 7, GID: 8}},
			want: []string{"f f 0640 7:8 =f"},
		},
		{
			name: "devices are copied",
			req:  Request{Sources: []string{"/dev/null"}, Dest: "/dev/"},
			want: []string{"dev d 0755 0:0", "dev/null c 0666 0:0"},
		},
		{
			name: "setuid kept",
			req:  Request{Sources: []string{"/app/suid"}, Dest: "/x/"},
			want: []string{"x d 0755 0:0", "x/suid f 4755 0:0 =s"},
		},
		{
			name: "symlinks are 0777 whatever the source header says",
			req:  Request{Sources: []string{"/lk"}, Dest: "/x/"},
			want: []string{"x d 0755 0:0", "x/l644 l 0777 0:0 ->../etc/outofscope"},
		},
		{
			name:    "missing",
			req:     Request{Sources: []string{"/nope"}, Dest: "/x/"},
			wantErr: `COPY failed: file not found in source: "/nope"`,
		},
		{
			name: "parent dotdot in a source stays in the root",
			req:  Request{Sources: []string{"../../usr/bin/tool"}, Dest: "/x/"},
			want: []string{"x d 0755 0:0", "x/tool f 0755 1000:1000 =tool"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := tc.req
			req.From = from
			got, err := Plan(context.Background(), req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if s := summary(t, got); !slices.Equal(s, tc.want) {
				t.Errorf("entries:\n got %q\nwant %q", s, tc.want)
			}
		})
	}

	t.Run("mtime and xattrs are kept", func(t *testing.T) {
		t.Parallel()
		got, err := Plan(context.Background(), Request{Sources: []string{"/usr/bin/tool", "/etc/caps"}, Dest: "/x/", From: from})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 { // x x/caps x/tool
			t.Fatalf("got %d entries", len(got))
		}
		if !got[2].Header.ModTime.Equal(mtime) {
			t.Errorf("ModTime = %v, want %v", got[2].Header.ModTime, mtime)
		}
		if rec := got[1].Header.PAXRecords; rec["SCHILY.xattr.security.capability"] != "v" || len(rec) != 1 {
			t.Errorf("PAXRecords = %v, want only the xattr", rec)
		}
	})
}

func TestPlanHonoursContextCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Plan(ctx, Request{Sources: []string{"a"}, Dest: "/", From: fstest.MapFS{"a": {Data: []byte("a")}}})
	if err == nil {
		t.Fatal("Plan with a cancelled context succeeded")
	}
}
