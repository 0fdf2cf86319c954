package copier

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"syscall"

	"github.com/intesys/ship-action/internal/layer"
)

// lookResult is a cached answer of Target.
type lookResult struct {
	fi  fs.FileInfo
	err error
}

// lstat looks name up in Target without following a final symlink when
// Target implements fs.ReadLinkFS (Stat otherwise), at most once per Plan:
// a lookup may read base image layers. The error is Target's own.
func (p *planner) lstat(name string) (fs.FileInfo, error) {
	if r, ok := p.looks[name]; ok {
		return r.fi, r.err
	}
	var r lookResult
	if rl, ok := p.req.Target.(fs.ReadLinkFS); ok {
		r.fi, r.err = rl.Lstat(name)
	} else {
		r.fi, r.err = p.req.Target.Stat(name)
	}
	p.looks[name] = r
	return r.fi, r.err
}

// missing reports whether a lookup error means that nothing is there: the
// path or one of its parents does not exist, or a parent is not a
// directory.
func missing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// lookup is lstat for the planner's own decisions: nil when name is missing
// (or when Target is not consulted: none, or --link).
func (p *planner) lookup(name string) (fs.FileInfo, error) {
	if p.link || p.req.Target == nil {
		return nil, nil
	}
	fi, err := p.lstat(name)
	switch {
	case missing(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%s: looking up /%s in the destination: %w", p.instr, name, err)
	}
	return fi, nil
}

// targetIsDir reports whether dir is a directory in Target, following a
// final symlink as BuildKit's os.Stat does.
func (p *planner) targetIsDir(dir string) (bool, error) {
	fi, err := p.lookup(dir)
	if err != nil || fi == nil {
		return false, err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return fi.IsDir(), nil
	}
	if v, ok := p.stats[dir]; ok {
		return v, nil
	}
	fi, err = p.req.Target.Stat(dir)
	switch {
	case missing(err):
		p.stats[dir] = false
		return false, nil
	case err != nil:
		return false, fmt.Errorf("%s: looking up /%s in the destination: %w", p.instr, dir, err)
	}
	p.stats[dir] = fi.IsDir()
	return fi.IsDir(), nil
}

// cachedTarget is Target for resolveDest, with Lstat answered by the
// planner's cache.
type cachedTarget struct {
	fs.ReadLinkFS
	p *planner
}

func (c cachedTarget) Lstat(name string) (fs.FileInfo, error) { return c.p.lstat(name) }

// addParents adds the directories a BuildKit snapshot diff holds besides the
// copied entries: every ancestor of an entry (the root excepted), and every
// directory the copy's MkdirAll created. Without them, a layer would leave
// the metadata of those directories to whoever extracts it, and an overlay
// snapshotter's upper layer then replaces, say, the base's 1777 /tmp with a
// 0755 one.
//
// An ancestor that exists in Target keeps its metadata (BuildKit leaves it
// alone); a missing one is created, as in BuildKit: by MkdirAll with the
// --chmod mode (else 0755) and the --chown owner (else root), or, inside an
// ADD archive, as moby's Untar creates implied directories (0755, root). As
// with Linux mkdir, a directory created in a setgid directory is setgid and,
// unless chowned, takes that directory's group. With --link the copy starts
// from an empty file system: every ancestor is created.
//
// Each directory is looked up in Target at most once.
func (p *planner) addParents() error {
	need := map[string]bool{}
	mark := func(d string) {
		for ; d != "." && !need[d]; d = path.Dir(d) {
			if _, ok := p.entries[d]; ok {
				return // an entry: its ancestors are marked from it
			}
			need[d] = true
		}
	}
	for name := range p.entries {
		mark(path.Dir(name))
	}
	made := make([]string, 0, len(p.mkdirs))
	for d := range p.mkdirs {
		made = append(made, d)
	}
	slices.SortFunc(made, comparePaths) // a deterministic order of lookups
	for _, d := range made {
		if _, ok := p.entries[d]; ok || need[d] {
			continue
		}
		exists, err := p.targetIsDir(d)
		if err != nil {
			return err
		}
		if !exists {
			mark(d) // created by MkdirAll: in the diff even when empty
		}
	}
	dirs := make([]string, 0, len(need))
	for d := range need {
		dirs = append(dirs, d)
	}
	slices.SortFunc(dirs, comparePaths) // parents first
	for _, d := range dirs {
		fi, err := p.lookup(d)
		if err != nil {
			return err
		}
		if fi != nil && fi.IsDir() {
			p.put(existingDirEntry(d, fi))
			continue
		}
		// Missing, or not a directory (a symlink the destination was not
		// resolved through): the layer's directory replaces it.
		p.put(p.createdDirEntry(d))
	}
	return nil
}

// createdDirEntry is the directory d as the copy creates it, its parent
// already planned.
func (p *planner) createdDirEntry(d string) layer.Entry {
	mode, byMkdir := p.mkdirs[d]
	owner := Owner{}
	if !byMkdir {
		mode = defaultDirMode // implied by an archive entry: moby's Untar
	} else {
		owner = p.createdOwner()
	}
	if parent, ok := p.entries[path.Dir(d)]; ok && parent.Header.Typeflag == tar.TypeDir && parent.Header.Mode&0o2000 != 0 {
		mode |= 0o2000
		// Without --chown BuildKit's MkdirAll leaves the group the kernel
		// gave; Untar chowns its implied directories to root.
		if byMkdir && p.req.Chown == nil {
			owner.GID = parent.Header.Gid
		}
	}
	return p.dirEntry(d, mode, owner)
}

// existingDirEntry is the directory name of Target, with its metadata.
func existingDirEntry(name string, fi fs.FileInfo) layer.Entry {
	h := &tar.Header{
		Typeflag: tar.TypeDir,
		Name:     name,
		Mode:     modeBits(fi.Mode()),
		ModTime:  fi.ModTime(),
	}
	switch sys := fi.Sys().(type) {
	case *tar.Header:
		h.Mode = sys.Mode & 0o7777
		h.Uid, h.Gid = sys.Uid, sys.Gid
		h.ModTime = sys.ModTime
		h.PAXRecords = xattrRecords(sys.PAXRecords)
	case *syscall.Stat_t:
		h.Uid, h.Gid = int(sys.Uid), int(sys.Gid)
	}
	return layer.Entry{Header: h}
}
