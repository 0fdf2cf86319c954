package copier

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// errOutside is the cause of every error about a path that leaves the build
// context (through "..", an absolute symlink or a symlink climbing past the root).
var errOutside = errors.New("outside the build context")

// Context is the build context directory with .dockerignore applied.
//
// It implements fs.FS, fs.StatFS, fs.ReadDirFS and fs.ReadLinkFS. Paths that
// .dockerignore excludes are invisible, as if absent. Symlinks are resolved
// inside the context: one that leaves it (an absolute target, or ".." past the
// root) gives an error wrapping the message "outside the build context", and
// nothing outside the directory is ever read (every access goes through an
// os.Root).
// A Context is safe for concurrent use.
type Context struct {
	root *os.Root
	// mu guards pm: patternmatcher compiles its patterns lazily, on the
	// first match, which is not safe for concurrent use.
	mu sync.Mutex
	pm *patternmatcher.PatternMatcher // nil: nothing ignored
}

// OpenContext opens the build context dir. It reads
// "<dockerfile base name>.dockerignore" next to dockerfilePath if that file
// exists, else ".dockerignore" in dir. As in BuildKit, the Dockerfile and the
// ignore file themselves are not excluded unless listed. dockerfilePath may be
// empty. excludes are further patterns in .dockerignore syntax that always
// apply (the caller's own output directory inside the context, for example).
func OpenContext(dir, dockerfilePath string, excludes ...string) (*Context, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening build context %s: %w", dir, err)
	}
	c := &Context{root: root}
	ignorePath := filepath.Join(dir, ".dockerignore")
	if dockerfilePath != "" {
		p := dockerfilePath + ".dockerignore"
		if _, err := os.Stat(p); err == nil {
			ignorePath = p
		}
	}
	var patterns []string
	f, err := os.Open(ignorePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		root.Close()
		return nil, fmt.Errorf("reading %s: %w", ignorePath, err)
	default:
		defer f.Close()
		patterns, err = ignorefile.ReadAll(f)
		if err != nil {
			root.Close()
			return nil, fmt.Errorf("reading %s: %w", ignorePath, err)
		}
	}
	// The caller's excludes come last, so no "!" line of the file can
	// bring them back.
	patterns = append(patterns, excludes...)
	if len(patterns) == 0 {
		return c, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("parsing %s: %w", ignorePath, err)
	}
	c.pm = pm
	return c, nil
}

// Close releases the context directory.
func (c *Context) Close() error { return c.root.Close() }

// ignored reports whether the .dockerignore patterns exclude p (a clean,
// slash-separated path relative to the context, free of symlinks).
func (c *Context) ignored(p string) bool {
	if c.pm == nil || p == "." {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.pm.MatchesOrParentMatches(p)
	return err == nil && m
}

// visible reports whether p, whose type is given by fi, is part of the
// context: not ignored, or an ignored directory that holds something a
// negated pattern brings back (BuildKit sends such a directory too).
func (c *Context) visible(p string, fi fs.FileInfo) bool {
	if !c.ignored(p) {
		return true
	}
	if !fi.IsDir() || !c.pm.Exclusions() {
		return false
	}
	return c.hasVisibleDescendant(p)
}

func (c *Context) hasVisibleDescendant(dir string) bool {
	f, err := c.root.Open(filepath.FromSlash(dir))
	if err != nil {
		return false
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return false
	}
	for _, e := range ents {
		p := path.Join(dir, e.Name())
		if !c.ignored(p) {
			return true
		}
		if e.IsDir() && c.hasVisibleDescendant(p) {
			return true
		}
	}
	return false
}

// lstat is the raw, visibility-checked Lstat of a symlink-free path.
func (c *Context) lstat(p string) (fs.FileInfo, error) {
	fi, err := c.root.Lstat(filepath.FromSlash(p))
	if err != nil {
		return nil, err
	}
	if p != "." && c.ignored(p) && (!fi.IsDir() || !c.pm.Exclusions()) {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return fi, nil
}

func (c *Context) readlink(p string) (string, error) {
	return c.root.Readlink(filepath.FromSlash(p))
}

// resolve follows the symlinks of name inside the context.
func (c *Context) resolve(op, name string, followFinal bool) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	p, err := resolvePath(c.lstat, c.readlink, name, followFinal, false)
	if err != nil {
		return "", &fs.PathError{Op: op, Path: name, Err: unwrapPathError(err)}
	}
	return p, nil
}

// statResolved checks the final visibility rule for a resolved path.
func (c *Context) statResolved(op, name, p string) (fs.FileInfo, error) {
	fi, err := c.lstat(p)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: unwrapPathError(err)}
	}
	if p != "." && !c.visible(p, fi) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return fi, nil
}

// Stat returns the FileInfo of name, following symlinks inside the context.
func (c *Context) Stat(name string) (fs.FileInfo, error) {
	p, err := c.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return c.statResolved("stat", name, p)
}

// Lstat returns the FileInfo of name without following a final symlink.
func (c *Context) Lstat(name string) (fs.FileInfo, error) {
	p, err := c.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return c.statResolved("lstat", name, p)
}

// ReadLink returns the target of the symlink name.
func (c *Context) ReadLink(name string) (string, error) {
	p, err := c.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if _, err := c.statResolved("readlink", name, p); err != nil {
		return "", err
	}
	t, err := c.readlink(p)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: unwrapPathError(err)}
	}
	return t, nil
}

// ReadDir lists the visible entries of the directory name, sorted by name.
func (c *Context) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := c.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if _, err := c.statResolved("readdir", name, p); err != nil {
		return nil, err
	}
	return c.readDirResolved(name, p)
}

func (c *Context) readDirResolved(name, p string) ([]fs.DirEntry, error) {
	f, err := c.root.Open(filepath.FromSlash(p))
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: unwrapPathError(err)}
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: unwrapPathError(err)}
	}
	out := ents[:0]
	for _, e := range ents {
		cp := path.Join(p, e.Name())
		if c.ignored(cp) {
			if !e.IsDir() || !c.pm.Exclusions() || !c.hasVisibleDescendant(cp) {
				continue
			}
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// Open opens name for reading, following symlinks inside the context.
// A directory's ReadDir lists only visible entries.
func (c *Context) Open(name string) (fs.File, error) {
	p, err := c.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	fi, err := c.statResolved("open", name, p)
	if err != nil {
		return nil, err
	}
	f, err := c.root.Open(filepath.FromSlash(p))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: unwrapPathError(err)}
	}
	if !fi.IsDir() {
		return f, nil
	}
	return &ctxDir{File: f, c: c, name: name, p: p}, nil
}

// ctxDir is an open context directory whose listing hides ignored entries.
type ctxDir struct {
	*os.File
	c       *Context
	name, p string
	ents    []fs.DirEntry
	read    bool
}

func (d *ctxDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		ents, err := d.c.readDirResolved(d.name, d.p)
		if err != nil {
			return nil, err
		}
		d.ents, d.read = ents, true
	}
	if n <= 0 {
		out := d.ents
		d.ents = nil
		return out, nil
	}
	if len(d.ents) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.ents))
	out := d.ents[:n]
	d.ents = d.ents[n:]
	return out, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
