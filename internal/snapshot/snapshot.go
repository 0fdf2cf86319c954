package snapshot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// capabilityXattr is the only extended attribute BuildKit compares and
// writes into layers.
const capabilityXattr = "security.capability"

// hashWorkers bounds the goroutines that hash content in Take (fewer when
// GOMAXPROCS is lower); hashQueue is how many files the walk may be ahead.
const (
	hashWorkers = 4
	hashQueue   = 256
)

// Option configures Take and Diff.
type Option func(*options) error

type options struct {
	ignore map[string]struct{}
	hash   bool
	hashed func(full string) // tests: called after each file Take hashed
}

func newOptions(opts []Option) (options, error) {
	o := options{ignore: map[string]struct{}{}}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, fmt.Errorf("configuring snapshot: %w", err)
		}
	}
	return o, nil
}

// WithIgnore names paths, relative to the directory (a leading "/" is
// allowed), that belong to the sandbox: they and everything below them are
// never walked, never put into a layer and never whited out. Typical values
// are "proc", "dev", "sys", "etc/resolv.conf" when bind-mounted, and the
// targets of secret and cache mounts. Paths given to Take are also ignored by
// Diff.
func WithIgnore(paths ...string) Option {
	return func(o *options) error {
		for _, p := range paths {
			c := path.Clean("/" + filepath.ToSlash(p))[1:]
			if c == "" || strings.Contains(p, "\x00") {
				return fmt.Errorf("ignoring %q: not a path below the root", p)
			}
			o.ignore[c] = struct{}{}
		}
		return nil
	}
}

// WithContentHash makes Take hash the content of the regular files whose
// metadata cannot tell a change apart (non-empty files whose mtime is a whole
// second, such as files extracted from a layer), so that Diff reports such a
// file only when its content changed, exactly as BuildKit does. Without it
// Diff reports every touched ambiguous file as modified. It costs one read of
// those files in Take.
func WithContentHash() Option {
	return func(o *options) error {
		o.hash = true
		return nil
	}
}

// record is the metadata of one path.
type record struct {
	mode        uint32 // st_mode: type and permission bits
	uid, gid    uint32
	size        int64
	mtimeSec    int64
	mtimeNsec   int64
	ctimeSec    int64
	ctimeNsec   int64
	ino, dev    uint64
	nlink, rdev uint64
	link        string            // symlink target
	xattrs      map[string]string // nil when there are none
	hash        []byte            // sha256 of the content, with WithContentHash only
}

func (r *record) isDir() bool { return r.mode&unix.S_IFMT == unix.S_IFDIR }
func (r *record) isReg() bool { return r.mode&unix.S_IFMT == unix.S_IFREG }

// ambiguous reports whether a change of content may leave r's metadata as it
// was: a non-empty regular file whose mtime is a whole second.
func (r *record) ambiguous() bool { return r.isReg() && r.size > 0 && r.mtimeNsec == 0 }

// Snapshot is the recorded metadata of a directory tree, taken by Take.
type Snapshot struct {
	ignore  map[string]struct{}
	entries map[string]*record // by slash-separated path relative to dir
}

// Len returns the number of paths recorded (the root not included).
func (s *Snapshot) Len() int { return len(s.entries) }

// Take records the metadata of every entry under dir: path, type, mode
// (setuid, setgid and sticky bits included), uid, gid, size, mtime and ctime
// in nanoseconds, inode and device, link count, symlink target and extended
// attributes. It reads no content, except with WithContentHash. The root
// directory itself is not recorded. Nothing may change dir while Take runs.
func Take(ctx context.Context, dir string, opts ...Option) (*Snapshot, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{ignore: o.ignore, entries: map[string]*record{}}
	// Content is hashed by a few workers while the walk goes on: reading
	// and hashing a base's files is most of Take's time.
	type hashJob struct {
		full string
		r    *record
	}
	jobs := make(chan hashJob, hashQueue)
	// stop ends the workers when the walk fails: the files still queued
	// are not read.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(wctx)
	if o.hash {
		for range min(runtime.GOMAXPROCS(0), hashWorkers) {
			g.Go(func() error {
				buf := make([]byte, 64<<10)
				for j := range jobs {
					if err := gctx.Err(); err != nil {
						return err
					}
					h, err := hashFile(j.full, buf)
					if err != nil {
						return err
					}
					j.r.hash = h
					if o.hashed != nil {
						o.hashed(j.full)
					}
				}
				return nil
			})
		}
	}
	werr := walk(gctx, dir, o.ignore, func(rel, full string, r *record) error {
		if err := readXattrs(full, r); err != nil {
			return err
		}
		s.entries[rel] = r
		if o.hash && r.ambiguous() {
			select {
			case jobs <- hashJob{full: full, r: r}:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	if werr != nil {
		stop()
	}
	close(jobs)
	// A failed hash cancels the walk: its error is the one to report,
	// unless the walk failed first and stopped the workers.
	if herr := g.Wait(); herr != nil && (werr == nil || !errors.Is(herr, context.Canceled)) {
		werr = herr
	}
	if werr != nil {
		return nil, fmt.Errorf("taking snapshot of %s: %w", dir, werr)
	}
	return s, nil
}

// walk calls fn for every path below root in lexical order, parents before
// children, without following symlinks and skipping ignored paths and
// sockets.
func walk(ctx context.Context, root string, ignore map[string]struct{}, fn func(rel, full string, r *record) error) error {
	type child struct {
		rel, full string
		r         *record
	}
	var visit func(rel string) error
	visit = func(rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		full := filepath.Join(root, filepath.FromSlash(rel))
		flags := os.O_RDONLY | unix.O_DIRECTORY
		if rel != "" {
			flags |= unix.O_NOFOLLOW // the root itself may be reached through a symlink
		}
		f, err := os.OpenFile(full, flags, 0)
		if err != nil {
			return fmt.Errorf("reading directory: %w", err)
		}
		names, err := f.Readdirnames(-1)
		if err != nil {
			f.Close()
			return fmt.Errorf("reading directory %s: %w", full, err)
		}
		slices.Sort(names)
		children := make([]child, 0, len(names))
		fd := int(f.Fd())
		for _, name := range names {
			c := child{rel: name, full: filepath.Join(full, name)}
			if rel != "" {
				c.rel = rel + "/" + name
			}
			if _, ok := ignore[c.rel]; ok {
				continue
			}
			c.r, err = lstatAt(fd, name, c.full)
			if err != nil {
				f.Close()
				return err
			}
			if c.r.mode&unix.S_IFMT == unix.S_IFSOCK {
				continue
			}
			children = append(children, c)
		}
		f.Close()
		for _, c := range children {
			if err := fn(c.rel, c.full, c.r); err != nil {
				return err
			}
			if c.r.isDir() {
				if err := visit(c.rel); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return visit("")
}

// lstatAt reads the metadata of name in the directory dirfd; full is its
// path, for messages.
func lstatAt(dirfd int, name, full string) (*record, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, fmt.Errorf("reading metadata: %w", &os.PathError{Op: "lstat", Path: full, Err: err})
	}
	r := &record{
		mode:      st.Mode,
		uid:       st.Uid,
		gid:       st.Gid,
		size:      st.Size,
		mtimeSec:  st.Mtim.Sec,
		mtimeNsec: st.Mtim.Nsec,
		ctimeSec:  st.Ctim.Sec,
		ctimeNsec: st.Ctim.Nsec,
		ino:       st.Ino,
		dev:       st.Dev,
		nlink:     uint64(st.Nlink),
		rdev:      st.Rdev,
	}
	if r.mode&unix.S_IFMT == unix.S_IFLNK {
		buf := make([]byte, max(st.Size+1, 128))
		for {
			n, err := unix.Readlinkat(dirfd, name, buf)
			if err != nil {
				return nil, fmt.Errorf("reading symlink: %w", &os.PathError{Op: "readlink", Path: full, Err: err})
			}
			if n < len(buf) {
				r.link = string(buf[:n])
				break
			}
			buf = make([]byte, len(buf)*2)
		}
	}
	if !r.isReg() {
		r.size = 0
	}
	return r, nil
}

// readXattrs records every extended attribute of full in r.
func readXattrs(full string, r *record) error {
	buf := make([]byte, 256)
	for {
		n, err := unix.Llistxattr(full, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("listing extended attributes: %w", &os.PathError{Op: "llistxattr", Path: full, Err: err})
		}
		if n == 0 {
			return nil
		}
		for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
			v, ok, err := getXattr(full, name)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if r.xattrs == nil {
				r.xattrs = map[string]string{}
			}
			r.xattrs[name] = v
		}
		return nil
	}
}

// getXattr reads one extended attribute; ok is false when it is absent.
func getXattr(full, name string) (string, bool, error) {
	buf := make([]byte, 128)
	for {
		n, err := unix.Lgetxattr(full, name, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, len(buf)*4)
			continue
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
			return "", false, nil
		case err != nil:
			return "", false, fmt.Errorf("reading extended attribute %s: %w", name, &os.PathError{Op: "lgetxattr", Path: full, Err: err})
		}
		return string(buf[:n]), true, nil
	}
}

// hashFile returns the sha256 of the content of full, read with buf.
func hashFile(full string, buf []byte) ([]byte, error) {
	f, err := os.OpenFile(full, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("hashing content: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if buf == nil {
		buf = make([]byte, 64<<10)
	}
	// Hide WriteTo, which would ignore buf.
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
		return nil, fmt.Errorf("hashing content of %s: %w", full, err)
	}
	return h.Sum(nil), nil
}
