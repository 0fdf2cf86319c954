package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/intesys/ship-action/internal/layer"
)

// opaqueXattr marks an overlayfs upper directory that hides the lower
// directories of the same name (a directory deleted and created again).
const opaqueXattr = "trusted.overlay.opaque"

// DiffUpper returns the layer entries of what changed in an overlay mount,
// read from its upper directory: upper holds what the RUN wrote (overlayfs
// whiteouts, character devices 0/0, for deleted paths, and opaque
// directories for directories deleted and created again), lower is the
// file system under it (the single lower directory, or a read-only overlay
// mount of the lower directories). The overlay must be unmounted, or at
// least no longer written to. The result is what Diff gives for the same
// change with WithContentHash (see the package documentation), following
// BuildKit's overlay differ: a path in upper that has the same type, mode,
// owner, device number, security.capability, size and mtime as in lower
// (and, when both mtimes are whole seconds, the same content or link
// target) was only copied up and is not in the layer; a whiteout gives a
// whiteout entry when lower has the path; an opaque directory gives
// whiteouts for the lower children it hides. Content is read lazily from
// upper. Paths given to WithIgnore are skipped. Nothing outside upper and
// lower is read: lower paths are looked up only below directories that
// are directories in lower.
func DiffUpper(ctx context.Context, upper, lower string, opts ...Option) ([]layer.Entry, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	d := &upperDiff{ctx: ctx, upper: upper, lower: lower, ignore: o.ignore, emit: map[string]bool{}}
	if err := d.dir("", true, false); err != nil {
		return nil, fmt.Errorf("comparing %s with %s: %w", upper, lower, err)
	}
	for _, rel := range slices.Concat(d.changed, d.whiteouts) {
		for p := path.Dir(rel); p != "."; p = path.Dir(p) {
			d.emit[p] = true
		}
	}
	entries, err := assemble(upper, d.walked, d.emit, d.whiteouts)
	if err != nil {
		return nil, fmt.Errorf("comparing %s with %s: %w", upper, lower, err)
	}
	return entries, nil
}

// upperDiff is the state of one DiffUpper walk.
type upperDiff struct {
	ctx          context.Context
	upper, lower string
	ignore       map[string]struct{}

	walked    []pathRecord    // every path of upper that is not a whiteout, in walk order
	emit      map[string]bool // paths to emit with their current metadata
	changed   []string        // paths that changed themselves
	whiteouts []string        // deleted paths (topmost only)
}

// dir visits the directory rel of upper. lowerDir tells whether rel is a
// directory in lower too (so that its children may be looked up there);
// opaque whether rel, or a directory above it, hides lower (then whiteout
// devices mean nothing and lower children are looked up only for
// comparison).
func (d *upperDiff) dir(rel string, lowerDir, opaque bool) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	full := filepath.Join(d.upper, filepath.FromSlash(rel))
	names, recs, err := readDir(full, rel, d.ignore)
	if err != nil {
		return err
	}
	for i, name := range names {
		crel := path.Join(rel, name)
		r := recs[i]
		cfull := filepath.Join(full, name)
		if r.mode&unix.S_IFMT == unix.S_IFCHR && r.rdev == 0 {
			// A whiteout: the path was deleted, if lower had it.
			if !opaque && lowerDir {
				if _, err := d.lowerRecord(crel); err == nil {
					d.whiteouts = append(d.whiteouts, crel)
				} else if !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			continue
		}
		if strings.HasPrefix(name, whiteoutPrefix) {
			return fmt.Errorf("%s: names starting with %q are reserved for whiteouts", crel, whiteoutPrefix)
		}
		d.walked = append(d.walked, pathRecord{crel, r})
		var old *record
		if lowerDir {
			old, err = d.lowerRecord(crel)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		same, err := d.same(old, r, crel, cfull)
		if err != nil {
			return err
		}
		if !same {
			d.emit[crel] = true
			d.changed = append(d.changed, crel)
		}
		if !r.isDir() {
			continue
		}
		childOpaque := opaque
		if !opaque {
			v, ok, err := getXattr(cfull, opaqueXattr)
			if err != nil {
				return err
			}
			childOpaque = ok && v == "y"
		}
		childLower := old != nil && old.isDir()
		if childOpaque && !opaque && childLower {
			if err := d.hidden(crel); err != nil {
				return err
			}
		}
		if err := d.dir(crel, childLower, childOpaque); err != nil {
			return err
		}
	}
	return nil
}

// hidden records whiteouts for the children of the lower directory rel
// that the opaque upper directory rel no longer has.
func (d *upperDiff) hidden(rel string) error {
	lfull := filepath.Join(d.lower, filepath.FromSlash(rel))
	names, _, err := readDir(lfull, rel, d.ignore)
	if err != nil {
		return err
	}
	for _, name := range names {
		crel := path.Join(rel, name)
		_, err := os.Lstat(filepath.Join(d.upper, filepath.FromSlash(crel)))
		if errors.Is(err, os.ErrNotExist) {
			d.whiteouts = append(d.whiteouts, crel)
			continue
		}
		if err != nil {
			return err
		}
		// Present in both: deeper children that are gone are found when
		// the walk reaches crel, whose lower counterpart is compared then.
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(d.upper, filepath.FromSlash(crel)), &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			lr, err := d.lowerRecord(crel)
			if err != nil {
				return err
			}
			if lr.isDir() {
				if err := d.hidden(crel); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// lowerRecord returns the metadata of rel in lower (its parent is known
// to be a directory in lower), os.ErrNotExist when lower has no such path.
func (d *upperDiff) lowerRecord(rel string) (*record, error) {
	parent := filepath.Join(d.lower, filepath.FromSlash(path.Dir(rel)))
	f, err := os.OpenFile(parent, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := lstatAt(int(f.Fd()), path.Base(rel), filepath.Join(parent, path.Base(rel)))
	if errors.Is(err, unix.ENOENT) {
		return nil, os.ErrNotExist
	}
	return r, err
}

// same reports whether the upper path rel (metadata cur, on disk at full)
// equals old, its lower counterpart (nil: none), as BuildKit's sameDirent
// decides.
func (d *upperDiff) same(old, cur *record, rel, full string) (bool, error) {
	if old == nil || old.mode != cur.mode || old.uid != cur.uid || old.gid != cur.gid || old.rdev != cur.rdev {
		return false, nil
	}
	lfull := filepath.Join(d.lower, filepath.FromSlash(rel))
	oc, _, err := getXattr(lfull, capabilityXattr)
	if err != nil {
		return false, err
	}
	cc, _, err := getXattr(full, capabilityXattr)
	if err != nil {
		return false, err
	}
	if oc != cc {
		return false, nil
	}
	if cur.isDir() {
		return true, nil
	}
	if old.size != cur.size || old.mtimeSec != cur.mtimeSec {
		return false, nil
	}
	if old.mtimeNsec != 0 || cur.mtimeNsec != 0 {
		return old.mtimeNsec == cur.mtimeNsec, nil
	}
	if cur.mode&unix.S_IFMT == unix.S_IFLNK {
		return old.link == cur.link, nil
	}
	if !cur.isReg() || cur.size == 0 {
		return true, nil
	}
	oh, err := hashFile(lfull, nil)
	if err != nil {
		return false, err
	}
	ch, err := hashFile(full, nil)
	if err != nil {
		return false, err
	}
	return bytes.Equal(oh, ch), nil
}

// readDir returns the names of the entries of the directory full (rel
// below the root) in lexical order with their metadata, without ignored
// paths and sockets.
func readDir(full, rel string, ignore map[string]struct{}) ([]string, []*record, error) {
	flags := os.O_RDONLY | unix.O_DIRECTORY
	if rel != "" {
		flags |= unix.O_NOFOLLOW
	}
	f, err := os.OpenFile(full, flags, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("reading directory: %w", err)
	}
	defer f.Close()
	all, err := f.Readdirnames(-1)
	if err != nil {
		return nil, nil, fmt.Errorf("reading directory %s: %w", full, err)
	}
	slices.Sort(all)
	names := all[:0]
	var recs []*record
	for _, name := range all {
		if _, ok := ignore[path.Join(rel, name)]; ok {
			continue
		}
		r, err := lstatAt(int(f.Fd()), name, filepath.Join(full, name))
		if err != nil {
			return nil, nil, err
		}
		if r.mode&unix.S_IFMT == unix.S_IFSOCK {
			continue
		}
		names = append(names, name)
		recs = append(recs, r)
	}
	return names, recs, nil
}
