package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"
	"golang.org/x/sys/unix"
)

// ErrEscape is wrapped by the error of Apply and Extract when an entry, a
// hardlink target or a whiteout names a path outside the root file system
// ("..", an absolute name).
var ErrEscape = errors.New("path escapes the root filesystem")

// Defaults of the extraction options.
const (
	// defaultMaxSparse bounds the logical size of a sparse tar entry (GNU or
	// PAX sparse format). Its holes are not written to disk, but archive/tar
	// expands them into zeros that have to be read: a 1 TB entry of a few
	// real bytes would cost minutes of CPU. No image needs a bigger sparse
	// file; a bigger one is rejected as hostile.
	defaultMaxSparse = 16 << 30
	// defaultConcurrency is how many layers Extract fetches at a time (the
	// one being applied included).
	defaultConcurrency = 3
	// copyBufSize is the unit of file writes: a block of this size that is
	// all zeros becomes a hole.
	copyBufSize = 64 << 10
	// prefetchDepth is how many copyBufSize chunks of a layer Extract keeps
	// in memory ahead of the one being applied.
	prefetchDepth = 64

	schilyXattr = "SCHILY.xattr."
)

// ExtractOption configures Apply and Extract.
type ExtractOption func(*extractOptions) error

type extractOptions struct {
	layerName   string
	noDevices   bool
	concurrency int
}

func newExtractOptions(opts []ExtractOption) (*extractOptions, error) {
	o := &extractOptions{concurrency: defaultConcurrency}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// WithLayerName names the layer in errors, for example by its digest:
// `layer sha256:...: entry "x": ...`. Extract names each layer by its digest.
func WithLayerName(name string) ExtractOption {
	return func(o *extractOptions) error {
		o.layerName = name
		return nil
	}
}

// WithoutDevices skips character and block device entries (they are listed
// in ExtractReport.SkippedDevices). By default they are created with mknod,
// and skipped the same way when that is not permitted.
func WithoutDevices() ExtractOption {
	return func(o *extractOptions) error {
		o.noDevices = true
		return nil
	}
}

// withConcurrency is a test hook: how many layers Extract fetches at a time.
func withConcurrency(n int) ExtractOption {
	return func(o *extractOptions) error {
		if n < 1 {
			return fmt.Errorf("concurrency %d: must be at least 1", n)
		}
		o.concurrency = n
		return nil
	}
}

// ExtractReport tells what an extraction could not reproduce, so that the
// caller can warn once, and how much it wrote.
type ExtractReport struct {
	// Entries is the number of tar entries applied (whiteouts included).
	Entries int
	// Bytes is the total logical size of the regular files written.
	Bytes int64
	// SkippedDevices lists the character and block devices that were not
	// created (WithoutDevices, or mknod not permitted), as paths in the
	// image without a leading "/".
	SkippedDevices []string
	// SkippedXattrs counts extended attributes the file system refused.
	SkippedXattrs int
	// SkippedOwners counts entries whose owner could not be set (not
	// permitted, or an id not mapped in a user namespace): they are owned
	// by the extracting user.
	SkippedOwners int
}

func (r *ExtractReport) add(o *ExtractReport) {
	r.Entries += o.Entries
	r.Bytes += o.Bytes
	r.SkippedDevices = append(r.SkippedDevices, o.SkippedDevices...)
	r.SkippedXattrs += o.SkippedXattrs
	r.SkippedOwners += o.SkippedOwners
}

// Apply applies one uncompressed layer tar stream to dir, created if
// missing, as containerd and BuildKit apply a layer:
//
//   - `.wh.NAME` removes NAME of the layers below; `.wh..wh..opq` empties its
//     directory of the content of the layers below (entries of the same
//     layer, before or after the marker, stay).
//   - An entry replaces an existing one of another type (a directory
//     recursively); a directory over a directory keeps the content and takes
//     the new metadata.
//   - Regular files (blocks of zeros become holes), directories, symlinks,
//     hardlinks (to an entry of this or an earlier layer; a link to a symlink
//     links the symlink itself), fifos and devices (mknod; skipped and
//     reported when not permitted or WithoutDevices).
//   - Numeric owner (Lchown), mode with setuid, setgid and sticky (set after
//     the owner), xattrs from SCHILY.xattr.* PAX records (failures counted),
//     access and modification times (of symlinks too; of directories after
//     their content). The root entry "." is ignored, as containerd does.
//
// Confinement: nothing outside dir is created or changed. Symlinks met in a
// parent path (or a hardlink target's parent) are followed as a chroot into
// dir would follow them: absolute targets start at dir, ".." stops at dir.
// An entry name, hardlink target or whiteout that is absolute or climbs out
// with ".." fails with ErrEscape; a symlink loop in a parent path fails too.
// Every file system operation goes through an os.Root on dir, or through
// the *at system calls relative to a directory opened through it.
//
// A regular entry shorter in the stream than its header says fails (nothing
// is written beyond the bytes actually present). A sparse entry (GNU or PAX
// sparse format) is written with holes and may be at most 16 GiB.
func Apply(ctx context.Context, dir string, r io.Reader, opts ...ExtractOption) (*ExtractReport, error) {
	o, err := newExtractOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("applying layer: %w", err)
	}
	root, err := openRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rep, err := applyLayer(ctx, root, r, o)
	if err != nil && o.layerName != "" {
		err = fmt.Errorf("layer %s: %w", o.layerName, err)
	}
	return rep, err
}

func openRoot(dir string) (*os.Root, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	return root, nil
}

// applier applies one layer.
type applier struct {
	ctx  context.Context
	root *os.Root
	opts *extractOptions
	rep  *ExtractReport

	unpacked map[string]bool     // resolved paths created by this layer
	dirs     []string            // resolved paths of this layer's directories, in order
	dirTimes map[string][2]int64 // resolved path → atime, mtime (ns) to set at the end
	resolved map[string]string   // parent path as in the tar → resolved path
	pdir     struct {            // the last parent directory opened
		path string
		f    *os.File
	}
	buf, zeros []byte
}

func applyLayer(ctx context.Context, root *os.Root, r io.Reader, o *extractOptions) (*ExtractReport, error) {
	a := &applier{
		ctx:      ctx,
		root:     root,
		opts:     o,
		rep:      &ExtractReport{},
		unpacked: map[string]bool{},
		dirTimes: map[string][2]int64{},
		resolved: map[string]string{},
		buf:      make([]byte, copyBufSize),
		zeros:    make([]byte, copyBufSize),
	}
	defer a.closeParent()
	tr := tar.NewReader(ctxReader{ctx, r})
	for {
		if err := ctx.Err(); err != nil {
			return a.rep, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.rep, fmt.Errorf("reading tar: %w", err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.rep, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	for _, p := range a.dirs {
		ts, ok := a.dirTimes[p]
		if !ok {
			continue
		}
		delete(a.dirTimes, p)
		if err := a.setTimes(p, ts); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return a.rep, fmt.Errorf("setting times of %q: %w", p, err)
		}
	}
	return a.rep, nil
}

// entryPath cleans a name of the tar stream into a path relative to the
// root ("." for the root itself). Absolute names are taken relative to the
// root, as Docker and containerd do; names that climb out of it are rejected.
func entryPath(name string) (string, error) {
	// As Docker and containerd do, a leading "/" means the root of the
	// file system being built, not the host's.
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", ErrEscape
	}
	return p, nil
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	}
	name, err := entryPath(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		return nil
	}
	a.rep.Entries++
	dir, base := path.Split(name)
	if base == opaqueMarker {
		parent, err := a.resolveDir(dir, true)
		if err != nil {
			return err
		}
		return a.opaque(parent)
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		target := base[len(whiteoutPrefix):]
		if target == "" || target == "." || target == ".." {
			return fmt.Errorf("whiteout of %q: %w", target, ErrEscape)
		}
		parent, err := a.resolveDir(dir, false)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil // nothing to remove
		}
		if err != nil {
			return err
		}
		p := path.Join(parent, target)
		if a.unpacked[p] {
			return nil // whiteouts hide only the layers below
		}
		a.invalidate()
		if err := a.root.RemoveAll(p); err != nil {
			return fmt.Errorf("removing %q: %w", p, err)
		}
		return nil
	}

	parent, err := a.resolveDir(dir, true)
	if err != nil {
		return err
	}
	full := path.Join(parent, base)
	if full == "." {
		return nil
	}
	isDir := hdr.Typeflag == tar.TypeDir
	var linkTarget string
	if hdr.Typeflag == tar.TypeLink {
		if linkTarget, err = a.linkTarget(hdr.Linkname); err != nil {
			return err
		}
		if linkTarget == full {
			return nil // a link to itself: nothing to do
		}
	}
	if sparse(hdr) && hdr.Size > defaultMaxSparse {
		return fmt.Errorf("sparse file of %d bytes (at most %d): %w", hdr.Size, int64(defaultMaxSparse), errTooBig)
	}

	// Remove what is there unless both are directories. All calls on full
	// go through the descriptor of its parent (resolved and opened through
	// the root) with its last element: as confined as the root's methods,
	// without walking the path again for each.
	pfd, base, err := a.parentFD(full)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if !isDir || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			a.invalidate()
			if err := a.root.RemoveAll(full); err != nil {
				return fmt.Errorf("removing %q: %w", full, err)
			}
		}
	} else if !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "lstat", Path: full, Err: err}
	}

	isSymlink := false
	switch hdr.Typeflag {
	case tar.TypeDir:
		pfd, base, err := a.parentFD(full)
		if err != nil {
			return err
		}
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return &fs.PathError{Op: "mkdir", Path: full, Err: err}
		}
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse: //nolint:staticcheck // TypeRegA still occurs in old layers
		if err := a.writeFile(full, hdr, r); err != nil {
			return err
		}
	case tar.TypeSymlink:
		a.invalidate()
		isSymlink = true
		pfd, base, err := a.parentFD(full)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return &fs.PathError{Op: "symlink", Path: full, Err: err}
		}
	case tar.TypeLink:
		if err := a.root.Link(linkTarget, full); err != nil {
			return err
		}
		fi, err := a.root.Lstat(full)
		if err != nil {
			return err
		}
		isSymlink = fi.Mode()&fs.ModeSymlink != 0
	case tar.TypeChar, tar.TypeBlock:
		if a.opts.noDevices {
			a.rep.SkippedDevices = append(a.rep.SkippedDevices, full)
			return nil
		}
		mode := uint32(unix.S_IFCHR)
		if hdr.Typeflag == tar.TypeBlock {
			mode = unix.S_IFBLK
		}
		err := a.mknod(full, mode|uint32(hdr.Mode&0o7777), int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			a.rep.SkippedDevices = append(a.rep.SkippedDevices, full)
			return nil
		}
		if err != nil {
			return err
		}
	case tar.TypeFifo:
		if err := a.mknod(full, unix.S_IFIFO|uint32(hdr.Mode&0o7777), 0); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	a.unpacked[full] = true
	return a.metadata(full, hdr, isSymlink, isDir)
}

var errTooBig = errors.New("entry too big")

// sparse reports whether hdr is a GNU or PAX sparse entry.
func sparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// linkTarget resolves a hardlink's target: its parent as a chroot would,
// the last element not followed (a link to a symlink links the symlink).
func (a *applier) linkTarget(linkname string) (string, error) {
	name, err := entryPath(linkname)
	if err != nil {
		return "", fmt.Errorf("hardlink to %q: %w", linkname, err)
	}
	if name == "." {
		return "", fmt.Errorf("hardlink to the root directory")
	}
	dir, base := path.Split(name)
	parent, err := a.resolveDir(dir, false)
	if err != nil {
		return "", fmt.Errorf("hardlink to %q: %w", linkname, err)
	}
	return path.Join(parent, base), nil
}

// resolveDir resolves p, a directory path of the tar stream, to a path
// relative to the root with no symlink in it, following symlinks as a
// chroot into the root would (absolute targets from the root, ".." stopping
// at the root). When create is set, missing directories are made (0755);
// otherwise a missing one is an fs.ErrNotExist error.
func (a *applier) resolveDir(p string, create bool) (string, error) {
	p = strings.TrimSuffix(p, "/")
	if p == "" || p == "." {
		return ".", nil
	}
	if r, ok := a.resolved[p]; ok {
		return r, nil
	}
	var resolved []string
	todo := strings.Split(p, "/")
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}
		cand := path.Join(append(resolved, c)...)
		fi, err := a.root.Lstat(cand)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := a.root.Mkdir(cand, 0o755); err != nil {
				return "", err
			}
			resolved = append(resolved, c)
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0:
			links++
			if links > maxSymlinks {
				return "", fmt.Errorf("resolving %q: %w", p, syscall.ELOOP)
			}
			target, err := a.root.Readlink(cand)
			if err != nil {
				return "", err
			}
			if strings.HasPrefix(target, "/") {
				resolved = resolved[:0]
			}
			todo = append(strings.Split(target, "/"), todo...)
		case fi.IsDir():
			resolved = append(resolved, c)
		default:
			return "", fmt.Errorf("resolving %q: %q: %w", p, cand, syscall.ENOTDIR)
		}
	}
	r := path.Join(append([]string{"."}, resolved...)...)
	a.resolved[p] = r
	return r, nil
}

// invalidate forgets resolved and opened directories: called before
// anything is removed or a symlink created.
func (a *applier) invalidate() {
	clear(a.resolved)
	a.closeParent()
}

func (a *applier) closeParent() {
	if a.pdir.f != nil {
		a.pdir.f.Close()
		a.pdir.f = nil
		a.pdir.path = ""
	}
}

// parentFD returns a descriptor of the directory holding p (opened through
// the root) and p's last element.
func (a *applier) parentFD(p string) (int, string, error) {
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if a.pdir.f == nil || a.pdir.path != dir {
		a.closeParent()
		f, err := a.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return -1, "", err
		}
		a.pdir.f, a.pdir.path = f, dir
	}
	return int(a.pdir.f.Fd()), base, nil
}

func (a *applier) mknod(p string, mode uint32, dev int) error {
	fd, base, err := a.parentFD(p)
	if err != nil {
		return err
	}
	if err := unix.Mknodat(fd, base, mode, dev); err != nil {
		return &fs.PathError{Op: "mknod", Path: p, Err: err}
	}
	return nil
}

// writeFile writes a regular file; blocks of zeros become holes, so neither
// a sparse entry nor a stream of zeros takes room on disk.
func (a *applier) writeFile(p string, hdr *tar.Header, r io.Reader) error {
	// One component relative to the parent directory opened through the
	// root: as confined as root.OpenFile, without walking the path again.
	pfd, base, err := a.parentFD(p)
	if err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &fs.PathError{Op: "create", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	var off int64
	hole := false
	for {
		n, rerr := io.ReadFull(r, a.buf)
		if n > 0 {
			if bytes.Equal(a.buf[:n], a.zeros[:n]) {
				hole = true
			} else {
				if _, err := f.WriteAt(a.buf[:n], off); err != nil {
					f.Close()
					return err
				}
				hole = false
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			f.Close()
			return fmt.Errorf("reading content: %w", rerr)
		}
	}
	if hole {
		if err := f.Truncate(off); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if off != hdr.Size {
		return fmt.Errorf("reading content: %d of %d bytes: %w", off, hdr.Size, io.ErrUnexpectedEOF)
	}
	a.rep.Bytes += off
	return nil
}

// metadata sets owner, xattrs, mode and times of p, in that order (chown
// clears setuid bits and file capabilities).
func (a *applier) metadata(p string, hdr *tar.Header, isSymlink, isDir bool) error {
	pfd, base, err := a.parentFD(p)
	if err != nil {
		return err
	}
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EINVAL) {
			return &fs.PathError{Op: "chown", Path: p, Err: err}
		}
		a.rep.SkippedOwners++
	}
	if err := a.xattrs(p, hdr); err != nil {
		return err
	}
	if !isSymlink {
		// p is no symlink: this applier made it, and nothing else writes
		// in the directory.
		pfd, base, err := a.parentFD(p)
		if err != nil {
			return err
		}
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return &fs.PathError{Op: "chmod", Path: p, Err: err}
		}
	}
	mtime := boundTime(hdr.ModTime)
	atime := mtime
	if t := boundTime(hdr.AccessTime); t.After(atime) {
		atime = t
	}
	ts := [2]int64{atime.UnixNano(), mtime.UnixNano()}
	if isDir {
		if _, ok := a.dirTimes[p]; !ok {
			a.dirs = append(a.dirs, p)
		}
		a.dirTimes[p] = ts
		return nil
	}
	return a.setTimes(p, ts)
}

func (a *applier) xattrs(p string, hdr *tar.Header) error {
	var fd int
	var base string
	for k, v := range hdr.PAXRecords {
		key, ok := strings.CutPrefix(k, schilyXattr)
		if !ok {
			continue
		}
		if strings.HasPrefix(key, "trusted.overlay.") || strings.HasPrefix(key, "user.overlay.") {
			// overlayfs metadata (opaque, redirect, metacopy): a layer must
			// not steer the overlay mounts a build makes on its extraction.
			continue
		}
		if base == "" {
			var err error
			if fd, base, err = a.parentFD(p); err != nil {
				return err
			}
		}
		// The kernel follows the descriptor's magic link to the directory
		// (opened through the root) and does not follow base.
		proc := "/proc/self/fd/" + strconv.Itoa(fd) + "/" + base
		if err := unix.Lsetxattr(proc, key, []byte(v), 0); err != nil {
			a.rep.SkippedXattrs++
		}
	}
	return nil
}

func (a *applier) setTimes(p string, ts [2]int64) error {
	fd, base, err := a.parentFD(p)
	if err != nil {
		return err
	}
	t := []unix.Timespec{unix.NsecToTimespec(ts[0]), unix.NsecToTimespec(ts[1])}
	if err := unix.UtimesNanoAt(fd, base, t, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimensat", Path: p, Err: err}
	}
	return nil
}

// opaque removes what dir holds from the layers below: every entry not
// unpacked by this layer, recursively into the directories it unpacked.
func (a *applier) opaque(dir string) error {
	f, err := a.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if !a.unpacked[p] {
			a.invalidate()
			if err := a.root.RemoveAll(p); err != nil {
				return fmt.Errorf("removing %q: %w", p, err)
			}
			continue
		}
		fi, err := a.root.Lstat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if err := a.opaque(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// boundTime keeps times the kernel can store, as containerd does.
func boundTime(t time.Time) time.Time {
	if t.Before(time.Unix(0, 0)) || t.After(time.Unix(0, 1<<63-1)) {
		return time.Unix(0, 0)
	}
	return t
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Extract applies layers, bottom first, to dir (created if missing). dir
// may hold an earlier extraction of a prefix of the same chain: pass the
// layers that remain. Up to 3 layers are fetched at a time, each decompressed
// into a bounded in-memory buffer while the layers below it are applied;
// each is applied as it streams in, strictly in order, with no temporary
// tarball. Errors name the layer by its digest. When ctx is cancelled,
// Extract stops, waits for its fetches to end and returns ctx's error.
// See Apply for the semantics of one layer.
func Extract(ctx context.Context, dir string, layers []v1.Layer, opts ...ExtractOption) (*ExtractReport, error) {
	o, err := newExtractOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("extracting layers: %w", err)
	}
	root, err := openRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: no fetch outlives Extract
	fetches := make([]*prefetch, len(layers))
	start := func(i int) {
		if i < len(layers) {
			fetches[i] = startPrefetch(ctx, &wg, layers[i])
		}
	}
	for i := range min(o.concurrency, len(layers)) {
		start(i)
	}

	total := &ExtractReport{}
	for i, l := range layers {
		p := fetches[i]
		rep, err := applyLayer(ctx, root, p, o)
		if err == nil {
			// Read the end of the stream (tar padding) so that the layer's
			// digest is verified.
			if _, err = io.Copy(io.Discard, p); err != nil {
				err = fmt.Errorf("reading tar: %w", err)
			}
		}
		p.stop()
		if rep != nil {
			total.add(rep)
		}
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
				return total, fmt.Errorf("extracting layers: %w", err)
			}
			return total, fmt.Errorf("layer %s: %w", layerName(l, i), err)
		}
		start(i + o.concurrency)
	}
	return total, nil
}

func layerName(l v1.Layer, i int) string {
	if d, err := l.Digest(); err == nil {
		return d.String()
	}
	return "#" + strconv.Itoa(i+1)
}

// prefetch reads a layer's uncompressed stream in a goroutine into a bounded
// queue of chunks; Read takes from the queue.
type prefetch struct {
	ctx    context.Context
	chunks chan []byte
	done   chan struct{} // closed by stop
	err    error         // the end of the stream; valid once chunks is closed
	cur    []byte
}

func startPrefetch(ctx context.Context, wg *sync.WaitGroup, l v1.Layer) *prefetch {
	p := &prefetch{ctx: ctx, chunks: make(chan []byte, prefetchDepth), done: make(chan struct{})}
	wg.Go(func() {
		defer close(p.chunks)
		rc, err := uncompressed(l)
		if err != nil {
			p.err = fmt.Errorf("fetching: %w", err)
			return
		}
		defer rc.Close()
		for {
			buf := make([]byte, copyBufSize)
			n, err := rc.Read(buf)
			if n > 0 {
				select {
				case p.chunks <- buf[:n]:
				case <-p.done:
					p.err = errors.New("stopped")
					return
				case <-ctx.Done():
					p.err = ctx.Err()
					return
				}
			}
			if err == io.EOF {
				// The end of the compressed stream, where its digest is
				// checked.
				if err := rc.Close(); err != nil {
					p.err = fmt.Errorf("fetching: %w", err)
					return
				}
				p.err = io.EOF
				return
			}
			if err != nil {
				p.err = fmt.Errorf("fetching: %w", err)
				return
			}
		}
	})
	return p
}

// uncompressed returns the content of l. gzip layers are decompressed with
// pgzip (decoding ahead in a goroutine, about a third faster than
// compress/gzip); Close reads the compressed stream to its end, so that
// the layer's digest is verified, and reports a mismatch.
func uncompressed(l v1.Layer) (io.ReadCloser, error) {
	mt, err := l.MediaType()
	if err != nil || (mt != types.DockerLayer && mt != types.OCILayer) {
		return l.Uncompressed()
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	zr, err := pgzip.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("reading gzip stream: %w", err)
	}
	return &gunzipper{zr: zr, rc: rc}, nil
}

type gunzipper struct {
	zr     *pgzip.Reader
	rc     io.ReadCloser
	eof    bool // the gzip stream ended
	closed bool
}

func (g *gunzipper) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err == io.EOF {
		g.eof = true
	}
	return n, err
}

func (g *gunzipper) Close() error {
	if g.closed {
		return nil
	}
	g.closed = true
	var derr error
	if g.eof {
		// What follows the gzip stream, to the end (never more than
		// padding): reaching it makes the fetch verify the digest.
		_, derr = io.Copy(io.Discard, g.rc)
	}
	zerr := g.zr.Close()
	cerr := g.rc.Close()
	return errors.Join(derr, zerr, cerr)
}

func (p *prefetch) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		select {
		case c, ok := <-p.chunks:
			if !ok {
				return 0, p.err
			}
			p.cur = c
		case <-p.ctx.Done():
			return 0, p.ctx.Err()
		}
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// stop ends the fetch if it is still running.
func (p *prefetch) stop() {
	close(p.done)
}
