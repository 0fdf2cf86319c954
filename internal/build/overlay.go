package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/intesys/ship-action/internal/layer"
	"github.com/intesys/ship-action/internal/sandbox"
	"github.com/intesys/ship-action/internal/snapshot"
)

// maxOverlayOpts is the longest mount option string overlay mounts take
// (the kernel copies one page of options).
const maxOverlayOpts = 4000

// WithoutOverlay keeps RUN from using overlay mounts even where the
// process may mount them: the stage's root file system is then a private
// copy of its base, and what a RUN changed is found by comparing two walks
// of it (as in a container without CAP_SYS_ADMIN, where this is the only
// way).
func WithoutOverlay() Option {
	return func(o *options) error { o.noOverlay = true; return nil }
}

// overlayRoot is a stage's root file system assembled with overlayfs, as
// BuildKit's overlay snapshotter does: read-only lower directories (the
// cached extraction of the base image at the bottom, never written to)
// and an upper directory that receives every change. Before each RUN the
// upper directory, if written to, becomes the top lower directory and a
// new empty one is mounted, so that after the RUN the upper directory is
// exactly what the RUN changed (snapshot.DiffUpper): no copy of the base
// and no walk of the whole tree. All directories are under dir, except a
// lower directory from the cache, which stays locked while mounted.
type overlayRoot struct {
	dir      string
	merged   string   // the mount point: the stage's root file system
	lowers   []string // top first
	upper    string
	work     string
	n        int  // directories made so far, for names
	mounted  bool // merged is mounted
	dirty    bool // upper holds changes
	volatile bool // mount with "volatile" (see overlayOptions)
	release  func()
	mem      *memUpper // where RUN's upper directories go when they fit; nil: the disk
}

// newOverlayRoot makes the directories of an overlay root under dir (an
// empty private directory) with lowers (top first; at least one) and
// mounts it. release, when not nil, is called once the lowers are no
// longer mounted.
func newOverlayRoot(dir string, lowers []string, volatile bool, release func()) (*overlayRoot, error) {
	o := &overlayRoot{dir: dir, merged: filepath.Join(dir, "root"), lowers: lowers, volatile: volatile, release: release}
	if err := os.Mkdir(o.merged, 0o755); err != nil {
		return nil, fmt.Errorf("creating overlay mount point: %w", err)
	}
	if err := o.mountNew(false); err != nil {
		o.close()
		return nil, err
	}
	return o, nil
}

// mountNew mounts merged with a new empty upper directory, in o.mem when
// inMem.
func (o *overlayRoot) mountNew(inMem bool) error {
	o.n++
	parent := o.dir
	if inMem {
		parent = o.mem.dir
	}
	upper := filepath.Join(parent, "u"+strconv.Itoa(o.n))
	work := filepath.Join(parent, "w"+strconv.Itoa(o.n))
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("creating overlay directory: %w", err)
		}
	}
	// The root of the mount takes the upper directory's metadata.
	if err := os.Chmod(upper, 0o755); err != nil {
		return fmt.Errorf("creating overlay directory: %w", err)
	}
	opts, err := overlayOptions(o.lowers, upper, work, o.volatile)
	if err != nil {
		return err
	}
	if err := unix.Mount("overlay", o.merged, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting overlay root file system: %w", err)
	}
	o.upper, o.work, o.mounted, o.dirty = upper, work, true, false
	return nil
}

// beginRun prepares a RUN: when the upper directory holds changes, they
// become a lower directory under a new empty upper one, in memory when
// there is room for it (see memUpper).
func (o *overlayRoot) beginRun() error {
	inMem := o.mem != nil && len(o.lowers) < memUpperMaxLowers && o.mem.room()
	if !o.dirty && inMem == o.upperInMem() {
		return nil
	}
	return o.remount(o.dirty, inMem)
}

// endRun follows a RUN whose layer is written: an upper directory in
// memory becomes a lower directory, under a new one on the disk for what
// the next instructions write (see memUpper).
func (o *overlayRoot) endRun() error {
	if !o.upperInMem() {
		return nil
	}
	return o.remount(true, false)
}

// upperInMem reports whether the upper directory is in o.mem.
func (o *overlayRoot) upperInMem() bool {
	return o != nil && o.mem != nil && filepath.Dir(o.upper) == o.mem.dir
}

// restartOnDisk follows a RUN killed because its upper directory in memory
// grew too large (memUpper.watch): the upper directory is deleted and a new
// one on the disk mounted, for the RUN to run again from the start.
func (o *overlayRoot) restartOnDisk() error {
	return o.remount(false, false)
}

// remount unmounts merged and mounts it again with a new upper directory
// (in memory when inMem); the current upper directory becomes the top
// lower one when keep, else it is deleted.
func (o *overlayRoot) remount(keep, inMem bool) error {
	if err := o.unmount(o.merged); err != nil {
		return err
	}
	o.mounted = false
	_ = os.RemoveAll(o.work)
	if keep {
		o.lowers = append([]string{o.upper}, o.lowers...)
	} else if err := os.RemoveAll(o.upper); err != nil {
		return fmt.Errorf("removing overlay directory: %w", err)
	}
	return o.mountNew(inMem)
}

// watchUpper returns the context to run a RUN with and the function to
// call when it ended, which reports whether it must run again on the disk
// (restartOnDisk): see memUpper.watch. Without an upper directory in
// memory, ctx itself and never.
func (o *overlayRoot) watchUpper(ctx context.Context) (context.Context, func() bool) {
	if !o.upperInMem() {
		return ctx, func() bool { return false }
	}
	return o.mem.watch(ctx)
}

// diff returns the layer entries of what changed since beginRun (see
// snapshot.DiffUpper). Their content is read from the upper directory,
// which must not change until the layer is written.
func (o *overlayRoot) diff(ctx context.Context, opts ...snapshot.Option) ([]layer.Entry, error) {
	lower := o.lowers[0]
	if len(o.lowers) > 1 {
		// The lower directories merged, read-only, for the comparison.
		lower = filepath.Join(o.dir, "lower"+strconv.Itoa(o.n))
		if err := os.Mkdir(lower, 0o755); err != nil {
			return nil, fmt.Errorf("creating overlay mount point: %w", err)
		}
		defer os.Remove(lower)
		opts, err := overlayOptions(o.lowers, "", "", false)
		if err != nil {
			return nil, err
		}
		if err := unix.Mount("overlay", lower, "overlay", unix.MS_RDONLY, opts); err != nil {
			return nil, fmt.Errorf("mounting overlay of the lower layers: %w", err)
		}
		defer o.unmount(lower) //nolint:errcheck // detached on failure
	}
	o.dirty = true
	return snapshot.DiffUpper(ctx, o.upper, lower, opts...)
}

// changed records that the root file system was written to (a layer
// applied to it).
func (o *overlayRoot) changed() { o.dirty = true }

// close unmounts the overlay and releases the cached lower directory. The
// directories under dir are left to the caller.
func (o *overlayRoot) close() {
	if o.mounted {
		_ = o.unmount(o.merged)
		o.mounted = false
	}
	if o.release != nil {
		o.release()
		o.release = nil
	}
}

// unmount unmounts target, detaching it when it is busy.
func (o *overlayRoot) unmount(target string) error {
	if err := unix.Unmount(target, 0); err != nil {
		if derr := unix.Unmount(target, unix.MNT_DETACH); derr != nil {
			return fmt.Errorf("unmounting %s: %w", target, err)
		}
	}
	return nil
}

// overlayOptions returns the mount options of an overlay of lowers (top
// first) with upper and work (a read-only overlay when upper is ""):
// redirects, metacopy and the inode index off, as BuildKit mounts it, so
// that the upper directory holds whole files and plain whiteouts. volatile
// (Linux 5.10+) makes sync and fsync no-ops on the mount and its unmount
// skip syncing the upper file system: the upper directory of a build lives
// only until its layer is written, and a crash loses nothing a build
// needs; dpkg's fsync per file and the sync at unmount otherwise cost
// seconds.
func overlayOptions(lowers []string, upper, work string, volatile bool) (string, error) {
	esc := make([]string, len(lowers))
	for i, l := range lowers {
		esc[i] = escapeOverlayPath(l)
	}
	opts := "lowerdir=" + strings.Join(esc, ":")
	if upper != "" {
		opts += ",upperdir=" + escapeOverlayPath(upper) + ",workdir=" + escapeOverlayPath(work)
	}
	opts += ",redirect_dir=off,metacopy=off,index=off"
	if volatile {
		opts += ",volatile"
	}
	if len(opts) > maxOverlayOpts {
		return "", fmt.Errorf("mounting overlay root file system: %d layers make the mount options too long (%d bytes); build with WithoutOverlay", len(lowers), len(opts))
	}
	return opts, nil
}

// escapeOverlayPath escapes the characters overlayfs's option parser
// treats as separators.
func escapeOverlayPath(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`)
	return r.Replace(p)
}

// useOverlay reports whether RUN uses overlay mounts in this build: the
// sandbox may mount (ModeNamespaces), WithoutOverlay is not set, and a
// test mount in the build's temporary directory works (with "volatile"
// when the kernel has it). Decided once.
func (b *builder) useOverlay() bool {
	b.overlayOnce.Do(func() {
		if b.opts.noOverlay || b.sandboxMode() != sandbox.ModeNamespaces {
			return
		}
		if err := probeOverlay(b.tmpDir, true); err == nil {
			b.overlay, b.overlayVolatile = true, true
		} else if err := probeOverlay(b.tmpDir, false); err == nil {
			b.overlay = true
		} else {
			b.opts.logger.Debug("overlay mounts unavailable: RUN works on a copy of the base", "err", err)
			return
		}
		b.opts.logger.Debug("RUN works on overlay mounts", "volatile", b.overlayVolatile)
	})
	return b.overlay
}

// probeOverlay mounts and unmounts a small overlay under dir.
func probeOverlay(dir string, volatile bool) error {
	tmp, err := os.MkdirTemp(dir, "overlay-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var paths []string
	for _, n := range []string{"l1", "l2", "u", "w", "m"} {
		p := filepath.Join(tmp, n)
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		paths = append(paths, p)
	}
	opts, err := overlayOptions(paths[:2], paths[2], paths[3], volatile)
	if err != nil {
		return err
	}
	if err := unix.Mount("overlay", paths[4], "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting a test overlay: %w", err)
	}
	if err := unix.Unmount(paths[4], 0); err != nil {
		_ = unix.Unmount(paths[4], unix.MNT_DETACH)
		return errors.Join(errors.New("unmounting a test overlay"), err)
	}
	return nil
}
