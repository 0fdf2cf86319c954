package copier

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

func TestContextDockerignore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		files      map[string]string
		dockerfile string // relative to the context; "" for none
		visible    []string
		invisible  []string
		copy       Request
		want       []string
		wantErr    string
	}{
		{
			name: "ignored file is invisible",
			files: map[string]string{
				".dockerignore": "secret.txt\n*.log\n",
				"secret.txt":    "s", "app.py": "a", "x.log": "l", "Dockerfile": "FROM scratch",
			},
			visible:   []string{"app.py", ".dockerignore", "Dockerfile"},
			invisible: []string{"secret.txt", "x.log"},
			copy:      Request{Sources: []string{"secret.txt"}, Dest: "/x/"},
			wantErr:   `COPY failed: file not found in build context: "secret.txt"`,
		},
		{
			name: "ignored files inside a copied directory are left out",
			files: map[string]string{
				".dockerignore": "app/**/*.pyc\napp/.git\n",
				"app/main.py":   "m", "app/main.pyc": "c", "app/pkg/mod.pyc": "c", "app/pkg/mod.py": "p", "app/.git/HEAD": "h",
			},
			visible:   []string{"app/main.py", "app/pkg/mod.py"},
			invisible: []string{"app/main.pyc", "app/.git", "app/.git/HEAD"},
			copy:      Request{Sources: []string{"app"}, Dest: "/app"},
			want: []string{
				"app d 0755 0:0",
				"app/main.py f 0644 0:0 =m",
				"app/pkg d 0755 0:0",
				"app/pkg/mod.py f 0644 0:0 =p",
			},
		},
		{
			name: "negation brings a file back from an ignored directory",
			files: map[string]string{
				".dockerignore": "docs\n!docs/keep.md\n",
				"docs/keep.md":  "k", "docs/drop.md": "d", "docs/sub/x": "x",
			},
			visible:   []string{"docs", "docs/keep.md"},
			invisible: []string{"docs/drop.md", "docs/sub", "docs/sub/x"},
			copy:      Request{Sources: []string{"."}, Dest: "/w/", Excludes: []string{".dockerignore"}},
			want:      []string{"w d 0755 0:0", "w/docs d 0755 0:0", "w/docs/keep.md f 0644 0:0 =k"},
		},
		{
			name: "everything ignored but one file",
			files: map[string]string{
				".dockerignore":    "*\n!requirements.txt\n",
				"requirements.txt": "flask", "app.py": "a", "Dockerfile": "FROM scratch",
			},
			visible:   []string{"requirements.txt"},
			invisible: []string{"app.py", "Dockerfile", ".dockerignore"},
			copy:      Request{Sources: []string{"*"}, Dest: "/w/"},
			want:      []string{"w d 0755 0:0", "w/requirements.txt f 0644 0:0 =flask"},
		},
		{
			name: "Dockerfile-specific ignore file wins",
			files: map[string]string{
				".dockerignore":                     "a.txt\n",
				"build/app.Dockerfile":              "FROM scratch",
				"build/app.Dockerfile.dockerignore": "b.txt\n",
				"a.txt":                             "a", "b.txt": "b",
			},
			dockerfile: "build/app.Dockerfile",
			visible:    []string{"a.txt"},
			invisible:  []string{"b.txt"},
			copy:       Request{Sources: []string{"a.txt"}, Dest: "/x/"},
			want:       []string{"x d 0755 0:0", "x/a.txt f 0644 0:0 =a"},
		},
		{
			name: "symlink to an ignored file is not found",
			files: map[string]string{
				".dockerignore": "hidden\n",
				"hidden":        "h", "ln": "link:hidden",
			},
			visible:   []string{"ln"},
			invisible: []string{"hidden"},
			copy:      Request{Sources: []string{"ln"}, Dest: "/x/"},
			wantErr:   `file not found in build context: "ln"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeTree(t, dir, tc.files)
			df := ""
			if tc.dockerfile != "" {
				df = filepath.Join(dir, tc.dockerfile)
			}
			c, err := OpenContext(dir, df)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, p := range tc.visible {
				if _, err := c.Lstat(p); err != nil {
					t.Errorf("Lstat(%q) = %v, want visible", p, err)
				}
			}
			for _, p := range tc.invisible {
				if _, err := c.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Lstat(%q) = %v, want fs.ErrNotExist", p, err)
				}
				if f, err := c.Open(p); err == nil {
					f.Close()
					t.Errorf("Open(%q) succeeded on an ignored path", p)
				}
			}
			req := tc.copy
			req.Context = c
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
		})
	}
}

// TestContextFS checks the fs interfaces with the standard library's
// conformance test, ignored paths included.
func TestContextFS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		".dockerignore": "**/*.tmp\nvendor\n!vendor/keep\n",
		"a/b.txt":       "b", "a/c.tmp": "c", "vendor/keep": "k", "vendor/drop": "d", "link": "link:a/b.txt",
		"dirlink": "link:a",
	})
	c, err := OpenContext(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := fstest.TestFS(c, ".dockerignore", "a/b.txt", "vendor/keep", "link"); err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(c, "dirlink/b.txt"); err != nil || string(b) != "b" {
		t.Errorf("ReadFile(dirlink/b.txt) = %q, %v", b, err)
	}
	if _, err := fs.ReadFile(c, "dirlink/c.tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(dirlink/c.tmp) = %v, want fs.ErrNotExist", err)
	}
	ents, err := fs.ReadDir(c, "vendor")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "keep" {
		t.Errorf("ReadDir(vendor) = %v, want only keep", ents)
	}
	if tgt, err := c.ReadLink("link"); err != nil || tgt != "a/b.txt" {
		t.Errorf("ReadLink(link) = %q, %v", tgt, err)
	}
}

func TestContextNeverLeaves(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	writeTree(t, dir, map[string]string{"outside/secret": "s"})
	ctxDir := filepath.Join(dir, "ctx")
	writeTree(t, ctxDir, map[string]string{
		"abs":       "link:" + filepath.Join(outside, "secret"),
		"rel":       "link:../outside/secret",
		"dir":       "link:../outside",
		"nested":    "dir",
		"nested/up": "link:../../outside",
	})
	c, err := OpenContext(ctxDir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []string{"abs", "rel", "dir/secret", "nested/up/secret"} {
		if _, err := c.Open(p); err == nil || !strings.Contains(err.Error(), "outside the build context") {
			t.Errorf("Open(%q) = %v, want outside-the-build-context error", p, err)
		}
		if _, err := c.Stat(p); err == nil {
			t.Errorf("Stat(%q) succeeded", p)
		}
		_, err := Plan(context.Background(), Request{Sources: []string{p}, Dest: "/x/", Context: c})
		if err == nil || err.Error() != "COPY source "+p+" is outside the build context" {
			t.Errorf("Plan(%q) error = %v", p, err)
		}
	}
	// Lstat of the link itself is fine: it is part of the context.
	if fi, err := c.Lstat("abs"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat(abs) = %v, %v", fi, err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatal(err)
	}
}

func TestContextConcurrentUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		".dockerignore": "**/*.tmp\nvendor\n!vendor/keep\nbuild/**\n",
		"a/b.txt":       "b", "a/c.tmp": "c", "vendor/keep": "k", "vendor/drop": "d", "build/x/y": "y",
	})
	c, err := OpenContext(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			es, err := Plan(context.Background(), Request{Sources: []string{"."}, Dest: "/w/", Context: c})
			if err == nil && len(es) != 7 { // w .dockerignore a a/b.txt build (empty: build/** keeps it) vendor vendor/keep
				err = fmt.Errorf("got %d entries", len(es))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestContextExtraExcludes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		// A negation in the file cannot bring back what the caller excludes.
		".dockerignore":       "*.tmp\n!ship-out\n",
		"app.py":              "a",
		"ship-out/index.json": "{}",
		"ship-out/oci-layout": "{}",
		"build/image.tar":     "t",
		"build/keep.txt":      "k",
		"Dockerfile":          "FROM scratch",
	})
	c, err := OpenContext(dir, filepath.Join(dir, "Dockerfile"), "ship-out", "build/image.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, name := range []string{"ship-out", "ship-out/index.json", "build/image.tar"} {
		if _, err := fs.Stat(c, name); err == nil {
			t.Errorf("%s is visible in the context, want excluded", name)
		}
	}
	for _, name := range []string{"app.py", "build/keep.txt"} {
		if _, err := fs.Stat(c, name); err != nil {
			t.Errorf("%s: %v, want visible", name, err)
		}
	}
}
