package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/rootfs"
	"github.com/intesys/ship-action/internal/sandbox"
)

// rootDir returns the stage's root file system directory, materialised in
// a private directory under the build's temporary directory on first use.
// With a cache dir, the layers of the stage's external base come from the
// cache's copy of them (see baseCache), made on the first build that needs
// them; the layers the stage's chain of stages added are extracted on top.
// From then on every layer the stage adds is applied to it too (syncRoot),
// so that it always equals the image.
func (st *stageState) rootDir() (string, error) {
	if st.root != "" {
		return st.root, nil
	}
	layers, err := st.img.Layers()
	if err != nil {
		return "", fmt.Errorf("listing layers: %w", err)
	}
	kept, nKept := st.rootFromBaseStage()
	if kept != nil && nKept > len(layers) {
		kept = nil
	}
	if kept != nil {
		st.b.opts.logger.Debug("root file system from the stage built on", "stage", st.s.DisplayName(), "from", st.s.BaseStage.DisplayName())
	}
	if st.b.useOverlay() {
		root, err := st.overlayRootDir(layers, kept, nKept)
		if err == nil || !errors.Is(err, errOverlay) {
			return root, err
		}
		st.b.opts.logger.Warn("overlay root file system unavailable: RUN works on a copy of the base", "stage", st.s.DisplayName(), "err", err)
	}
	dir, err := st.newRootDir()
	if err != nil {
		return "", err
	}
	ctx := st.b.runCtx
	log := st.b.opts.logger
	rest := layers
	var fill *baseFill
	if kept != nil {
		// The stage built on: its file system is there already.
		if err := st.copyKept(kept, dir); err != nil {
			_ = os.RemoveAll(dir)
			return "", err
		}
		rest = layers[nKept:]
	} else if spooled, f := st.spoolBase(layers); f != nil {
		// Not cached yet: extracted here, cached from the spool later.
		rest, fill = spooled, f
	} else {
		e, n, err := st.cachedBase(layers)
		if err != nil {
			_ = os.RemoveAll(dir)
			return "", err
		}
		if e != nil {
			err := copyTree(ctx, e.root, dir)
			e.release()
			if err == nil {
				rest = layers[n:]
			} else {
				// The cache is an optimisation: extract without it.
				log.Warn("copying the cached base root file system failed: extracting it", "stage", st.s.DisplayName(), "err", err)
				_ = os.RemoveAll(dir)
				if dir, err = st.newRootDir(); err != nil {
					return "", err
				}
			}
		}
	}
	if len(rest) > 0 {
		start := time.Now()
		log.Debug("extracting root file system", "stage", st.s.DisplayName(), "layers", len(rest))
		rep, err := rootfs.Extract(ctx, dir, rest)
		if fill != nil {
			fill.finish(st.b, err == nil)
		}
		if err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("extracting root file system: %w", err)
		}
		log.Debug("root file system extracted", "stage", st.s.DisplayName(), "layers", len(rest), "duration", time.Since(start))
		st.b.warnExtract(st.s.DisplayName(), rep)
	}
	st.root, st.rootDirs = dir, dir
	return dir, nil
}

// cachedBaseLayers returns how many of layers (the bottom ones, the
// external base's) come from the base cache: 0 without a cache.
func (st *stageState) cachedBaseLayers(layers []v1.Layer) int {
	if st.b.opts.cacheDir == "" || st.b.opts.noRootFSCache || !st.base.known {
		return 0
	}
	return min(st.base.layers, len(layers))
}

// cachedBase returns the base cache entry of the stage's external base
// (its first n layers), locked for reading until the caller releases it;
// nil when there is no cache, or when the cache fails in a way an
// extraction without it may not (logged). The errors are those an
// extraction would hit too: a cancelled build, a broken or hostile layer.
func (st *stageState) cachedBase(layers []v1.Layer) (*cacheEntry, int, error) {
	n := st.cachedBaseLayers(layers)
	if n == 0 {
		return nil, 0, nil
	}
	ctx := st.b.runCtx
	start := time.Now()
	e, err := newBaseCache(st.b.opts.cacheDir).entry(ctx, layers[:n])
	switch {
	case err == nil:
		st.b.opts.logger.Debug("base root file system", "stage", st.s.DisplayName(), "layers", n, "cached", e.hit, "duration", time.Since(start))
		st.b.warnExtract(st.s.DisplayName(), e.rep)
		return e, n, nil
	case ctx.Err() != nil:
		return nil, 0, fmt.Errorf("extracting root file system: %w", ctx.Err())
	case errors.As(err, new(*extractError)):
		return nil, 0, fmt.Errorf("extracting root file system: %w", err)
	}
	st.b.opts.logger.Warn("root file system cache unavailable", "stage", st.s.DisplayName(), "err", err)
	return nil, 0, nil
}

// baseFirstUse reports whether the stage's base is to be extracted in
// memory (privateBase) rather than into a new cache entry, because no
// build has used it before: a cache entry is written to the disk file by
// file (1.3 to 3.8 s for the Debian base of the benchmark against 1.0 to
// 1.3 s in memory, see memRoot), which pays only when a later build uses
// it, and a cache dir that is not kept between CI jobs never has one. So
// the first build on a base only records it (baseCache.firstUse), the
// second makes the entry, and the later ones use it. Never when an entry
// exists for the base or a prefix of it, when the base does not fit in
// memory (memRootSize), or with withBaseEntryOnFirstUse; and where the
// memory cannot take it after all (no tmpfs with user xattrs, before Linux
// 6.6; ENOSPC), the caller makes the entry as before. Other stages of this
// build on the same base do the same as the first.
func (st *stageState) baseFirstUse(layers []v1.Layer) bool {
	n := st.cachedBaseLayers(layers)
	if n == 0 || st.b.opts.baseEntryFirstUse || st.b.memRootSize(layers) == 0 {
		return false
	}
	ids, err := chainIDs(layers[:n])
	if err != nil {
		return false
	}
	c := newBaseCache(st.b.opts.cacheDir)
	for _, id := range ids {
		if c.hasEntry(id.Hex) {
			return false
		}
	}
	key := ids[n-1].Hex
	st.b.mu.Lock()
	defer st.b.mu.Unlock()
	if st.b.firstUseBases[key] {
		return true
	}
	if !c.firstUse(key) {
		return false
	}
	if st.b.firstUseBases == nil {
		st.b.firstUseBases = map[string]bool{}
	}
	st.b.firstUseBases[key] = true
	return true
}

// baseLowers returns the overlay's lower directory for the stage's base
// (its external base image's layers, see cachedBaseLayers), the function
// that releases it, and the layers still to apply above it: in memory on
// the base's first use (baseFirstUse), else the base's cache entry, else a
// private extraction (privateBase; not in memory again when that was just
// tried on a first use).
func (st *stageState) baseLowers(dir string, layers []v1.Layer) (lowers []string, release func(), rest []v1.Layer, err error) {
	tryMemory := true
	if st.baseFirstUse(layers) {
		base, unmount, err := st.memoryBase(dir, layers)
		if err != nil {
			return nil, nil, nil, err
		}
		if base != "" {
			st.b.opts.logger.Debug("base root file system used for the first time: in memory, cached from its next use on", "stage", st.s.DisplayName())
			return []string{base}, unmount, nil, nil
		}
		tryMemory = false
	}
	e, n, err := st.cachedBase(layers)
	if err != nil {
		return nil, nil, nil, err
	}
	if e != nil {
		return []string{e.root}, e.release, layers[n:], nil
	}
	base, unmount, err := st.privateBase(dir, layers, tryMemory)
	if err != nil {
		return nil, nil, nil, err
	}
	return []string{base}, unmount, nil, nil
}

// errOverlay marks a failure to mount an overlay root file system, after
// which the build goes on with a copy.
var errOverlay = errors.New("overlay mount failed")

// overlayRootDir makes the stage's root file system an overlay mount (see
// overlayRoot): the directories of kept (the stage it is built on, whose
// first nKept layers it shares) as lower directories, or else the base's
// cache entry, or a private extraction of the base when there is no
// cache (privateBase: in memory when it fits); the layers above them are
// applied through the mount. A mount failure wraps
// errOverlay.
func (st *stageState) overlayRootDir(layers []v1.Layer, kept *keptRoot, nKept int) (string, error) {
	ctx := st.b.runCtx
	log := st.b.opts.logger
	dir, err := st.newRootDir()
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		_ = os.RemoveAll(dir)
		return "", err
	}
	var lowers []string
	var release func()
	rest := layers
	if kept != nil {
		// The stage built on: its directories, read-only, under this one.
		lowers, rest = kept.keptLowers(), layers[nKept:]
	} else {
		lowers, release, rest, err = st.baseLowers(dir, layers)
		if err != nil {
			return fail(err)
		}
	}
	mem, release := st.b.mountMemUpper(dir, release)
	ov, err := newOverlayRoot(dir, lowers, st.b.overlayVolatile, release)
	if err != nil {
		if release != nil {
			release()
		}
		return fail(fmt.Errorf("%w: %w", errOverlay, err))
	}
	if len(rest) > 0 {
		log.Debug("extracting root file system", "stage", st.s.DisplayName(), "layers", len(rest))
		ov.changed()
		rep, err := rootfs.Extract(ctx, ov.merged, rest)
		if err != nil {
			ov.close()
			return fail(fmt.Errorf("extracting root file system: %w", err))
		}
		st.b.warnExtract(st.s.DisplayName(), rep)
	}
	ov.mem = mem
	st.ovl, st.root, st.rootDirs = ov, ov.merged, dir
	return st.root, nil
}

// newRootDir creates an empty private root file system directory.
func (st *stageState) newRootDir() (string, error) {
	dir, err := os.MkdirTemp(st.b.tmpDir, fmt.Sprintf("rootfs-%d-", st.s.Index))
	if err != nil {
		return "", fmt.Errorf("creating root file system directory: %w", err)
	}
	// A USER other than root must be able to use "/" inside the chroot.
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("creating root file system directory: %w", err)
	}
	return dir, nil
}

// syncRoot applies l, a layer just appended to the stage, to the stage's
// root file system directory when there is one.
func (st *stageState) syncRoot(ctx context.Context, l v1.Layer) error {
	if st.root == "" {
		return nil
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("applying layer to root file system: %w", err)
	}
	defer rc.Close()
	if st.ovl != nil {
		st.ovl.changed()
	}
	rep, err := rootfs.Apply(ctx, st.root, rc)
	if err != nil {
		return fmt.Errorf("applying layer to root file system: %w", err)
	}
	st.b.warnExtract(st.s.DisplayName(), rep)
	return nil
}

// removeRoot deletes the stage's root file system directory.
func (st *stageState) removeRoot() {
	if st.root == "" {
		return
	}
	st.closeDirView()
	t0 := time.Now()
	if st.ovl != nil {
		st.ovl.close()
		st.ovl = nil
	}
	t1 := time.Now()
	if st.b.opts.deferCleanup != nil && st.s.Index == st.b.plan.Target.Index {
		// The build ends: the directory goes with the deferred deletion of
		// the build's temporary directory.
		st.root, st.rootDirs = "", ""
		return
	}
	defer func() { st.b.opts.logger.Debug("root removed", "unmount", t1.Sub(t0), "remove", time.Since(t1)) }()
	if err := os.RemoveAll(st.rootDirs); err != nil {
		st.b.opts.logger.Warn("removing root file system directory", "dir", st.rootDirs, "err", err)
	}
	st.root, st.rootDirs = "", ""
}

// closeDirView closes the DirView of the root file system, if open.
func (st *stageState) closeDirView() {
	if st.dirView != nil {
		_ = st.dirView.Close()
		st.dirView = nil
	}
}

// warnExtract logs what an extraction could not reproduce.
func (b *builder) warnExtract(stage string, rep *rootfs.ExtractReport) {
	if rep == nil {
		return
	}
	if len(rep.SkippedDevices) > 0 || rep.SkippedOwners > 0 || rep.SkippedXattrs > 0 {
		b.opts.logger.Warn("root file system differs from the image",
			"stage", stage, "skipped_devices", len(rep.SkippedDevices),
			"skipped_owners", rep.SkippedOwners, "skipped_xattrs", rep.SkippedXattrs)
	}
}

// sandboxMode detects (or takes from the options) how RUN is isolated and
// logs it once per build.
func (b *builder) sandboxMode() sandbox.Mode {
	b.modeOnce.Do(func() {
		b.mode = b.opts.sandboxMode
		if b.mode == 0 {
			b.mode = sandbox.Detect()
		}
		b.opts.logger.Info(b.mode.Describe(), "sandbox", b.mode.String())
	})
	return b.mode
}

// absTemp returns the build's temporary directory as an absolute path.
func absTemp(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolving temporary directory: %w", err)
	}
	return abs, nil
}
