package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/intesys/ship-action/internal/rootfs"
)

// rootfsCacheDir is the directory under the cache dir that keeps extracted
// base root file systems, one entry per layer chain.
const rootfsCacheDir = "rootfs"

// Names inside a cache entry <key>/: the root file system and the report of
// its extraction (what it could not reproduce, for the build's warning).
const (
	entryRoot   = "root"
	entryReport = "report.json"
)

// usedSuffix names the file <key>.used beside the entries: a build has
// asked for the entry of chain key (see firstUse).
const usedSuffix = ".used"

// copyWorkers is how many files copyTree copies at a time: on ext4, more
// cost CPU time (contention in the file system) and gave no speed-up.
const copyWorkers = 2

// lockPoll is how often a build waiting for a cache entry's lock checks
// whether it is free (flock cannot wait for a context).
const lockPoll = 50 * time.Millisecond

// WithoutRootFSCache keeps Build from storing extracted base root file
// systems under the cache dir (see WithCacheDir), which it does by default
// so that a later build, or a later stage, on the same base copies them
// instead of downloading and extracting the base again. Storing one costs
// the build that makes it a second copy of the base: use this option when
// the cache dir does not outlive the build.
func WithoutRootFSCache() Option {
	return func(o *options) error { o.noRootFSCache = true; return nil }
}

// withBaseEntryOnFirstUse makes the base cache entry on a base's first use
// too (tests of the entries; see baseFirstUse).
func withBaseEntryOnFirstUse() Option {
	return func(o *options) error { o.baseEntryFirstUse = true; return nil }
}

// baseCache keeps extracted base root file systems under
// <cacheDir>/rootfs/<chain ID>, the OCI chain ID (sha256 of the chain of
// layer DiffIDs) of the layers extracted into it. An entry is written
// under a temporary name, renamed when complete, and never changed
// afterwards: a RUN never writes to it, because a build either mounts it
// as the read-only lower directory of an overlay or starts its private
// root file system from a copy of it (a reflink clone where the file
// system supports FICLONE). <chain ID>.lock serialises the creation of an
// entry (exclusive flock) against its readers (shared flock, held for as
// long as they use it), across goroutines and processes.
type baseCache struct {
	dir string
	// afterMiss, when set, is called when entry found no entry, before it
	// tries to create one (a test hook).
	afterMiss func()
}

func newBaseCache(cacheDir string) *baseCache {
	return &baseCache{dir: filepath.Join(cacheDir, rootfsCacheDir)}
}

// chainIDs returns the OCI chain ID of every prefix of layers: the DiffID
// of the first layer, then sha256("<previous chain ID> <DiffID>").
func chainIDs(layers []v1.Layer) ([]v1.Hash, error) {
	ids := make([]v1.Hash, len(layers))
	for i, l := range layers {
		d, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("hashing layer %d: %w", i+1, err)
		}
		if i == 0 {
			ids[i] = d
			continue
		}
		sum := sha256.Sum256([]byte(ids[i-1].String() + " " + d.String()))
		ids[i] = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	}
	return ids, nil
}

// cacheEntry is a complete entry of the cache, locked (shared) until
// release: its root directory must only be read.
type cacheEntry struct {
	root string
	rep  *rootfs.ExtractReport
	hit  bool // it was there before entry was called
	lk   *cacheLock
}

func (e *cacheEntry) release() { e.lk.unlock() }

// entry returns the cache entry of the chain of layers (at least one),
// creating it first (from the longest cached prefix of the chain plus the
// layers above it, or by extracting them all) when there is none.
func (c *baseCache) entry(ctx context.Context, layers []v1.Layer) (*cacheEntry, error) {
	ids, err := chainIDs(layers)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating root file system cache: %w", err)
	}
	key := ids[len(ids)-1].Hex
	root := filepath.Join(c.dir, key, entryRoot)

	// Readers hold the entry's lock shared for as long as they use it (an
	// overlay mount keeps it for the stage, or the whole build): the
	// creator must never wait for the exclusive lock, or it would wait for
	// a reader of this very build. So: read it shared if it is there; else
	// try to become its creator; else someone is creating it: wait, look
	// again.
	for {
		lk, err := c.lock(ctx, key, unix.LOCK_SH)
		if err != nil {
			return nil, err
		}
		rep, ok, err := c.readEntry(key)
		if ok && err == nil {
			return &cacheEntry{root: root, rep: rep, hit: true, lk: lk}, nil
		}
		lk.unlock()
		if err != nil {
			return nil, err
		}
		if c.afterMiss != nil {
			c.afterMiss()
		}
		lk, got, err := c.tryLock(key, unix.LOCK_EX)
		if err != nil {
			return nil, err
		}
		if got {
			return c.createLocked(ctx, ids, layers, root, lk)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

// createLocked creates the entry key of ids under the exclusive lock lk
// (unless another build did meanwhile) and returns it locked shared.
func (c *baseCache) createLocked(ctx context.Context, ids []v1.Hash, layers []v1.Layer, root string, lk *cacheLock) (*cacheEntry, error) {
	key := ids[len(ids)-1].Hex
	hit := true
	rep, ok, err := c.readEntry(key)
	if err == nil && !ok {
		hit = false
		rep, err = c.create(ctx, ids, layers)
	}
	if err == nil {
		// Keep it locked for reading only (flock converts the lock).
		if ferr := unix.Flock(int(lk.f.Fd()), unix.LOCK_SH); ferr != nil {
			err = fmt.Errorf("locking root file system cache entry: %w", ferr)
		}
	}
	if err != nil {
		lk.unlock()
		return nil, err
	}
	return &cacheEntry{root: root, rep: rep, hit: hit, lk: lk}, nil
}

// create writes the entry of the whole chain ids (the caller holds its
// exclusive lock).
func (c *baseCache) create(ctx context.Context, ids []v1.Hash, layers []v1.Layer) (_ *rootfs.ExtractReport, err error) {
	key := ids[len(ids)-1].Hex
	// Temporary directories of this key left by a build that died while
	// holding the lock.
	if old, _ := filepath.Glob(filepath.Join(c.dir, "tmp-"+key+"-*")); len(old) > 0 {
		for _, o := range old {
			_ = os.RemoveAll(o)
		}
	}
	tmp, err := os.MkdirTemp(c.dir, "tmp-"+key+"-")
	if err != nil {
		return nil, fmt.Errorf("creating root file system cache entry: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	root := filepath.Join(tmp, entryRoot)
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, fmt.Errorf("creating root file system cache entry: %w", err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return nil, fmt.Errorf("creating root file system cache entry: %w", err)
	}

	total := &rootfs.ExtractReport{}
	start := 0
	// Prefix reuse: the longest chain below this one that has an entry.
	for i := len(ids) - 2; i >= 0; i-- {
		pk := ids[i].Hex
		if !c.hasEntry(pk) {
			continue
		}
		plk, err := c.lock(ctx, pk, unix.LOCK_SH)
		if err != nil {
			return nil, err
		}
		rep, ok, err := c.copyEntry(ctx, pk, root)
		plk.unlock()
		if err != nil {
			return nil, err
		}
		if ok {
			addReport(total, rep)
			start = i + 1
			break
		}
	}
	rep, err := rootfs.Extract(ctx, root, layers[start:])
	if err != nil {
		return nil, &extractError{err: err}
	}
	addReport(total, rep)
	data, err := json.Marshal(total)
	if err != nil {
		return nil, fmt.Errorf("writing root file system cache entry: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, entryReport), data, 0o600); err != nil {
		return nil, fmt.Errorf("writing root file system cache entry: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, key)); err != nil {
		return nil, fmt.Errorf("writing root file system cache entry: %w", err)
	}
	return total, nil
}

// extractError is an error of the extraction of layers (a broken or
// hostile layer), not of the cache: extracting without the cache would
// fail the same way.
type extractError struct{ err error }

func (e *extractError) Error() string { return e.err.Error() }
func (e *extractError) Unwrap() error { return e.err }

// readEntry reads the report of entry key; ok is false when the entry
// does not exist (yet). The caller holds the entry's lock.
func (c *baseCache) readEntry(key string) (rep *rootfs.ExtractReport, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(c.dir, key, entryReport))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading root file system cache entry: %w", err)
	}
	rep = &rootfs.ExtractReport{}
	if err := json.Unmarshal(data, rep); err != nil {
		return nil, false, fmt.Errorf("reading root file system cache entry %s: %w", key, err)
	}
	touch(filepath.Join(c.dir, key, entryReport)) // its last use, for PruneCache
	return rep, true, nil
}

// firstUse records that a build asks for the entry of chain key and
// reports whether this is the first time: no build recorded it before. A
// marker that cannot be made counts as a later use (the entry is made, as
// before there were markers).
func (c *baseCache) firstUse(key string) bool {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return false
	}
	f, err := os.OpenFile(filepath.Join(c.dir, key+usedSuffix), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false
	}
	_ = f.Close()
	return true
}

// hasEntry reports whether entry key is there (entries appear whole: see
// create), without reading or locking it.
func (c *baseCache) hasEntry(key string) bool {
	_, err := os.Stat(filepath.Join(c.dir, key, entryRoot))
	return err == nil
}

// copyEntry copies the root file system of entry key into dst when the
// entry exists (ok) and returns the report of its extraction. The caller
// holds the entry's lock.
func (c *baseCache) copyEntry(ctx context.Context, key, dst string) (rep *rootfs.ExtractReport, ok bool, err error) {
	rep, ok, err = c.readEntry(key)
	if !ok || err != nil {
		return nil, ok, err
	}
	if err := copyTree(ctx, filepath.Join(c.dir, key, entryRoot), dst); err != nil {
		return nil, false, fmt.Errorf("copying cached root file system: %w", err)
	}
	return rep, true, nil
}

// cacheLock is a held flock on a cache entry's lock file.
type cacheLock struct{ f *os.File }

// lock takes the lock of entry key (how: unix.LOCK_SH or LOCK_EX), waiting
// until it is free or ctx is done.
func (c *baseCache) lock(ctx context.Context, key string, how int) (*cacheLock, error) {
	name := filepath.Join(c.dir, key+".lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking root file system cache entry: %w", err)
	}
	fd := int(f.Fd())
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if err == nil {
			return &cacheLock{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking root file system cache entry: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

// tryLock takes the lock of entry key (how: unix.LOCK_SH or LOCK_EX) if
// it is free; got is false when it is not.
func (c *baseCache) tryLock(key string, how int) (lk *cacheLock, got bool, err error) {
	f, err := os.OpenFile(filepath.Join(c.dir, key+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("locking root file system cache entry: %w", err)
	}
	err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
	switch {
	case err == nil:
		return &cacheLock{f: f}, true, nil
	case errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EINTR):
		f.Close()
		return nil, false, nil
	}
	f.Close()
	return nil, false, fmt.Errorf("locking root file system cache entry: %w", err)
}

// unlock releases the lock (closing the descriptor releases the flock).
func (l *cacheLock) unlock() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

func addReport(total, r *rootfs.ExtractReport) {
	if r == nil {
		return
	}
	total.Entries += r.Entries
	total.Bytes += r.Bytes
	total.SkippedDevices = append(total.SkippedDevices, r.SkippedDevices...)
	total.SkippedXattrs += r.SkippedXattrs
	total.SkippedOwners += r.SkippedOwners
}

// copyTree copies the tree under src into dst, an existing directory
// (which takes src's metadata), preserving what an extraction sets: file
// types (directories, regular files, symlinks, hardlinks, devices, FIFOs;
// sockets are skipped), owners, modes with setuid/setgid/sticky, xattrs,
// access and modification times, and holes of sparse files. Regular files
// are cloned with FICLONE when the file system can (copy-on-write: the
// copy shares no writable state with src), else copied in the kernel with
// copy_file_range, a few at a time. Symlinks are never followed. The walk
// reads names from src only and creates them in directories it made
// itself, so nothing outside dst is touched.
func copyTree(ctx context.Context, src, dst string) error {
	return copyTreeN(ctx, src, dst, min(runtime.GOMAXPROCS(0), copyWorkers))
}

// copyTreeN is copyTree with at most workers regular files copied at a time.
func copyTreeN(ctx context.Context, src, dst string, workers int) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s: not a directory", src)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	tc := &treeCopier{ctx: gctx, g: g, links: map[fileID]string{}}
	tc.reflink.Store(true)
	err := tc.dir(src, dst)
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	for _, l := range tc.hardlinks {
		if err := os.Link(l[0], l[1]); err != nil {
			return err
		}
	}
	// Directories last, children before parents: creating their entries
	// changed their times, and their modes may forbid writing.
	for i := len(tc.dirs) - 1; i >= 0; i-- {
		d := tc.dirs[i]
		if err := setMeta(d.src, d.dst, &d.st, false); err != nil {
			return err
		}
	}
	return setMeta(src, dst, &st, false)
}

type fileID struct{ dev, ino uint64 }

type dirMeta struct {
	src, dst string
	st       unix.Stat_t
}

// treeCopier is one copyTree: the walk creates directories, symlinks and
// device nodes itself and hands regular files to g.
type treeCopier struct {
	ctx       context.Context //nolint:containedctx // one walk
	g         *errgroup.Group
	links     map[fileID]string // first copy of each inode with several links
	hardlinks [][2]string       // (first copy, new name), linked after the files are copied
	dirs      []dirMeta         // in creation order
	reflink   atomic.Bool       // FICLONE has not failed yet
}

// dir copies the entries of the directory src into dst.
func (tc *treeCopier) dir(src, dst string) error {
	if err := tc.ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", src, err)
	}
	for _, n := range names {
		if err := tc.entry(filepath.Join(src, n), filepath.Join(dst, n)); err != nil {
			return err
		}
	}
	return nil
}

func (tc *treeCopier) entry(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: src, Err: err}
	}
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFDIR && st.Nlink > 1 {
		id := fileID{dev: st.Dev, ino: st.Ino}
		if first, ok := tc.links[id]; ok {
			tc.hardlinks = append(tc.hardlinks, [2]string{first, dst})
			return nil
		}
		tc.links[id] = dst
	}
	switch typ {
	case unix.S_IFDIR:
		if err := unix.Mkdir(dst, 0o700); err != nil {
			return &os.PathError{Op: "mkdir", Path: dst, Err: err}
		}
		tc.dirs = append(tc.dirs, dirMeta{src: src, dst: dst, st: st})
		return tc.dir(src, dst)
	case unix.S_IFREG:
		tc.g.Go(func() error {
			if err := tc.file(src, dst, &st); err != nil {
				return err
			}
			return setMeta(src, dst, &st, false)
		})
		return nil
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		return setMeta(src, dst, &st, true)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: dst, Err: err}
		}
		return setMeta(src, dst, &st, false)
	}
	return nil // sockets: no image carries them
}

// file copies the content of a regular file.
func (tc *treeCopier) file(src, dst string, st *unix.Stat_t) error {
	in, err := unix.Open(src, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: src, Err: err}
	}
	defer unix.Close(in)
	out, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: dst, Err: err}
	}
	if st.Size > 0 {
		err = tc.content(in, out, st.Size)
	}
	if cerr := unix.Close(out); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return nil
}

func (tc *treeCopier) content(in, out int, size int64) error {
	if tc.reflink.Load() {
		if err := unix.IoctlFileClone(out, in); err == nil {
			return nil
		}
		tc.reflink.Store(false)
	}
	// Only the data segments, so that holes stay holes.
	for off := int64(0); off < size; {
		data, err := unix.Seek(in, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // a hole up to the end
		}
		if err != nil {
			data = off
		}
		hole, err := unix.Seek(in, data, unix.SEEK_HOLE)
		if err != nil || hole > size {
			hole = size
		}
		if err := copyRange(in, out, data, hole); err != nil {
			return err
		}
		off = hole
	}
	return unix.Ftruncate(out, size)
}

// copyRange copies bytes [from, to) of in to the same offsets of out, in
// the kernel when it can.
func copyRange(in, out int, from, to int64) error {
	for from < to {
		roff, woff := from, from
		n, err := unix.CopyFileRange(in, &roff, out, &woff, int(min(to-from, 1<<30)), 0)
		if err != nil {
			// Not supported here (old kernel, some file systems): through
			// user space.
			r := io.NewSectionReader(fdFile{fd: in}, from, to-from)
			_, err := io.Copy(io.NewOffsetWriter(fdFile{fd: out}, from), r)
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF // the file shrank
		}
		from += int64(n)
	}
	return nil
}

// fdFile reads and writes at offsets of a descriptor it does not own.
type fdFile struct{ fd int }

func (f fdFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := unix.Pread(f.fd, p, off)
	if err == nil && n == 0 && len(p) > 0 {
		err = io.EOF
	}
	return n, err
}

func (f fdFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := unix.Pwrite(f.fd, p, off)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// setMeta gives dst the owner, xattrs, mode and times of src, in that
// order (chown clears setuid bits and file capabilities).
func setMeta(src, dst string, st *unix.Stat_t, symlink bool) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil &&
		!errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EINVAL) {
		return &os.PathError{Op: "lchown", Path: dst, Err: err}
	}
	copyXattrs(src, dst)
	if !symlink {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: dst, Err: err}
	}
	return nil
}

// copyXattrs copies the extended attributes of src to dst; those the file
// system refuses were refused when src was extracted too.
func copyXattrs(src, dst string) {
	sz, err := unix.Llistxattr(src, nil)
	if err != nil || sz <= 0 {
		return
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(src, buf)
	if err != nil {
		return
	}
	for name := range bytes.SplitSeq(buf[:sz], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		n := string(name)
		vsz, err := unix.Lgetxattr(src, n, nil)
		if err != nil {
			continue
		}
		val := make([]byte, vsz)
		if vsz > 0 {
			if vsz, err = unix.Lgetxattr(src, n, val); err != nil {
				continue
			}
		}
		_ = unix.Lsetxattr(dst, n, val[:vsz], 0)
	}
}
