package build

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/intesys/ship-action/internal/dockerfile"
	"github.com/intesys/ship-action/internal/rootfs"
)

// keptRoot is the root file system of a finished stage that later stages
// use (FROM it, or COPY --from it), kept until the build ends so that they
// read it instead of extracting its layers again. It is read-only from
// then on: with overlay mounts its directories (upper first) become lower
// directories of the stages built on it, and root is a read-only overlay
// of them; without, root is the stage's copy.
type keptRoot struct {
	root    string   // the file system as a directory tree
	lowers  []string // overlay: its directories, top first; nil for a copy
	dirs    string   // the private directory that holds it all
	mounted bool     // root is a read-only overlay mount
	release func()   // the lock of the base cache entry at the bottom, or nil

	mu   sync.Mutex
	view *rootfs.DirView
}

// referenced reports whether a stage the build needs uses s as its base
// or as a COPY --from source.
func (b *builder) referenced(s *dockerfile.ResolvedStage) bool {
	for _, n := range b.plan.Needed {
		if n.BaseStage != nil && n.BaseStage.Index == s.Index {
			return true
		}
		for _, src := range n.CopyFrom {
			if src != nil && src.Index == s.Index {
				return true
			}
		}
	}
	return false
}

// keepRoot hands the stage's root file system over to a keptRoot (nil
// when the stage has none, or no later stage uses it); the stage no
// longer owns it.
func (st *stageState) keepRoot() (*keptRoot, error) {
	if st.root == "" || !st.b.referenced(st.s) {
		return nil, nil
	}
	st.closeDirView()
	k := &keptRoot{root: st.root, dirs: st.rootDirs}
	if o := st.ovl; o != nil {
		if o.mounted {
			if err := o.unmount(o.merged); err != nil {
				return nil, err
			}
			o.mounted = false
		}
		k.lowers = append([]string{o.upper}, o.lowers...)
		k.release, o.release = o.release, nil
		st.ovl = nil
		if len(k.lowers) == 1 {
			k.root = k.lowers[0]
		} else {
			opts, err := overlayOptions(k.lowers, "", "", false)
			if err == nil {
				err = unix.Mount("overlay", o.merged, "overlay", unix.MS_RDONLY, opts)
			}
			if err != nil {
				k.remove(false)
				st.root, st.rootDirs = "", ""
				return nil, fmt.Errorf("mounting the root file system of stage %s read-only: %w", st.s.DisplayName(), err)
			}
			k.mounted = true
		}
	}
	st.root, st.rootDirs = "", ""
	st.b.mu.Lock()
	st.b.kept = append(st.b.kept, k)
	st.b.mu.Unlock()
	return k, nil
}

// dirView returns a DirView of the kept file system (opened once).
func (k *keptRoot) dirView() (*rootfs.DirView, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.view == nil {
		v, err := rootfs.NewDirView(k.root)
		if err != nil {
			return nil, err
		}
		k.view = v
	}
	return k.view, nil
}

// remove unmounts and deletes the kept file system; with keepDirs its
// directories are left for the deletion of the build's temporary
// directory (they are in it).
func (k *keptRoot) remove(keepDirs bool) {
	k.mu.Lock()
	if k.view != nil {
		_ = k.view.Close()
		k.view = nil
	}
	k.mu.Unlock()
	if k.mounted {
		if err := unix.Unmount(k.root, 0); err != nil {
			_ = unix.Unmount(k.root, unix.MNT_DETACH)
		}
		k.mounted = false
	}
	if k.release != nil {
		k.release()
		k.release = nil
	}
	if !keepDirs {
		_ = os.RemoveAll(k.dirs)
	}
}

// removeKept removes the file systems kept for later stages (the
// directories stay for a deferred deletion of the temporary directory).
func (b *builder) removeKept() {
	b.mu.Lock()
	kept := b.kept
	b.kept = nil
	b.mu.Unlock()
	for _, k := range kept {
		k.remove(b.opts.deferCleanup != nil)
	}
}

// rootFromBaseStage starts the stage's root file system from the kept
// root of the stage it is built on, when that stage has one; it returns
// false otherwise. nOwn is the number of layers of the base stage.
func (st *stageState) rootFromBaseStage() (k *keptRoot, nBase int) {
	if st.s.BaseStage == nil {
		return nil, 0
	}
	r := st.b.runs[st.s.BaseStage.Index]
	if r.res == nil || r.res.root == nil {
		return nil, 0
	}
	return r.res.root, len(r.res.cfg.RootFS.DiffIDs)
}

// copyKept copies the kept root k of the stage st is built on into dir,
// st's new private root directory.
func (st *stageState) copyKept(k *keptRoot, dir string) error {
	if err := copyTree(st.b.runCtx, k.root, dir); err != nil {
		return fmt.Errorf("copying the root file system of stage %s: %w", st.s.BaseStage.DisplayName(), err)
	}
	return nil
}

// keptLowers returns the lower directories a stage built on k mounts.
func (k *keptRoot) keptLowers() []string {
	if k.lowers != nil {
		return append([]string(nil), k.lowers...)
	}
	return []string{filepath.Clean(k.root)}
}
