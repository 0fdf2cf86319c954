package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/intesys/ship-action/internal/layer"
)

const whiteoutPrefix = ".wh."

// Diff compares the current state of dir (normally the directory s was taken
// of, after a RUN) with s and returns the layer entries of what changed, in
// layer order: added and modified paths with their current metadata (content
// read lazily from dir by Entry.Open), whiteouts for deleted paths, and every
// parent directory of a change (the root excluded). See the package
// documentation for what counts as a change. Paths ignored by Take and by
// opts are skipped. A path whose name starts with ".wh." cannot be
// represented in a layer and is an error. Entry.Open reads dir when the layer
// is written: dir must not change until then (a file whose type or size
// changed makes Open fail).
func (s *Snapshot) Diff(ctx context.Context, dir string, opts ...Option) ([]layer.Entry, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	for p := range s.ignore {
		o.ignore[p] = struct{}{}
	}

	var cur []pathRecord // in walk (layer) order
	now := map[string]*record{}
	emit := map[string]bool{} // paths to emit with their current metadata
	var changed []string      // the paths that changed themselves, in walk order
	err = walk(ctx, dir, o.ignore, func(rel, full string, r *record) error {
		if strings.HasPrefix(path.Base(rel), whiteoutPrefix) {
			return fmt.Errorf("%s: names starting with %q are reserved for whiteouts", rel, whiteoutPrefix)
		}
		cur = append(cur, pathRecord{rel, r})
		now[rel] = r
		ch, err := s.changed(s.entries[rel], r, full)
		if err != nil {
			return err
		}
		if ch {
			emit[rel] = true
			changed = append(changed, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("comparing %s with its snapshot: %w", dir, err)
	}

	// Deleted paths: a whiteout for the topmost one only. The parent of a
	// deleted path is implied deleted when it is gone or no longer a
	// directory; otherwise it is a directory in both states.
	var whiteouts []string
	for rel := range s.entries {
		if _, ok := now[rel]; ok {
			continue
		}
		if ignored(rel, o.ignore) {
			continue
		}
		parent := path.Dir(rel)
		if parent != "." {
			if p, ok := now[parent]; !ok || !p.isDir() {
				continue
			}
		}
		whiteouts = append(whiteouts, rel)
	}

	// Parents of every change, whiteouts included.
	for _, rel := range slices.Concat(changed, whiteouts) {
		for p := path.Dir(rel); p != "."; p = path.Dir(p) {
			emit[p] = true
		}
	}

	entries, err := assemble(dir, cur, emit, whiteouts)
	if err != nil {
		return nil, fmt.Errorf("comparing %s with its snapshot: %w", dir, err)
	}
	return entries, nil
}

// pathRecord is a path of a walk with its metadata.
type pathRecord struct {
	rel string
	r   *record
}

// assemble returns the layer entries of the paths of walked (in walk
// order) that emit names, with their metadata (content read from dir; a
// file with several names in the layer is written once and linked
// elsewhere), plus a whiteout for each of whiteouts, in layer order.
func assemble(dir string, walked []pathRecord, emit map[string]bool, whiteouts []string) ([]layer.Entry, error) {
	entries := make([]layer.Entry, 0, len(emit)+len(whiteouts))
	linkSource := map[[2]uint64]string{}
	for _, c := range walked {
		if !emit[c.rel] {
			continue
		}
		e, err := entryOf(dir, c.rel, c.r)
		if err != nil {
			return nil, err
		}
		if !c.r.isDir() && c.r.nlink > 1 {
			k := [2]uint64{c.r.dev, c.r.ino}
			if src, ok := linkSource[k]; ok {
				e.Header.Typeflag = tar.TypeLink
				e.Header.Linkname = src
				e.Header.Size = 0
				e.Header.Devmajor, e.Header.Devminor = 0, 0
				e.Open = nil
			} else {
				linkSource[k] = c.rel
			}
		}
		entries = append(entries, e)
	}
	for _, rel := range whiteouts {
		entries = append(entries, layer.Entry{Header: &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     path.Join(path.Dir(rel), whiteoutPrefix+path.Base(rel)),
			ModTime:  time.Unix(0, 0).UTC(),
		}})
	}
	slices.SortFunc(entries, func(a, b layer.Entry) int { return comparePaths(a.Header.Name, b.Header.Name) })
	return entries, nil
}

// changed reports whether the path now described by cur differs from old
// (nil when the path is new). full is its path on disk.
func (s *Snapshot) changed(old, cur *record, full string) (bool, error) {
	if old == nil || old.mode&unix.S_IFMT != cur.mode&unix.S_IFMT {
		return true, nil
	}
	if old.ino == cur.ino && old.dev == cur.dev &&
		old.ctimeSec == cur.ctimeSec && old.ctimeNsec == cur.ctimeNsec &&
		old.mtimeSec == cur.mtimeSec && old.mtimeNsec == cur.mtimeNsec &&
		old.size == cur.size && old.mode == cur.mode && old.uid == cur.uid && old.gid == cur.gid &&
		old.link == cur.link {
		return false, nil // not touched
	}
	if old.mode != cur.mode || old.uid != cur.uid || old.gid != cur.gid || old.rdev != cur.rdev || old.link != cur.link {
		return true, nil
	}
	capability, _, err := getXattr(full, capabilityXattr)
	if err != nil {
		return false, err
	}
	if capability != old.xattrs[capabilityXattr] {
		return true, nil
	}
	if cur.isDir() {
		return false, nil
	}
	if old.size != cur.size || old.mtimeSec != cur.mtimeSec || old.mtimeNsec != cur.mtimeNsec {
		return true, nil
	}
	if !old.ambiguous() {
		return false, nil
	}
	// Same size and the same whole-second mtime: only the content can tell.
	if old.hash == nil {
		return true, nil
	}
	h, err := hashFile(full, nil)
	if err != nil {
		return false, err
	}
	return !bytes.Equal(h, old.hash), nil
}

// entry returns the layer entry of rel with its current metadata.
func entryOf(dir, rel string, r *record) (layer.Entry, error) {
	h := &tar.Header{
		Name:    rel,
		Mode:    int64(r.mode & 07777),
		Uid:     int(r.uid),
		Gid:     int(r.gid),
		ModTime: time.Unix(r.mtimeSec, r.mtimeNsec),
		Format:  tar.FormatPAX,
	}
	var open func() (io.ReadCloser, error)
	switch r.mode & unix.S_IFMT {
	case unix.S_IFREG:
		h.Typeflag = tar.TypeReg
		h.Size = r.size
		open = opener(dir, rel, r.size)
	case unix.S_IFDIR:
		h.Typeflag = tar.TypeDir
	case unix.S_IFLNK:
		h.Typeflag = tar.TypeSymlink
		h.Linkname = r.link
	case unix.S_IFCHR, unix.S_IFBLK:
		h.Typeflag = tar.TypeChar
		if r.mode&unix.S_IFMT == unix.S_IFBLK {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor = int64(unix.Major(r.rdev))
		h.Devminor = int64(unix.Minor(r.rdev))
	case unix.S_IFIFO:
		h.Typeflag = tar.TypeFifo
	default:
		return layer.Entry{}, fmt.Errorf("%s: unsupported file type %#o", rel, r.mode&unix.S_IFMT)
	}
	full := filepath.Join(dir, filepath.FromSlash(rel))
	capability, ok, err := getXattr(full, capabilityXattr)
	if err != nil {
		return layer.Entry{}, err
	}
	if ok {
		h.PAXRecords = map[string]string{"SCHILY.xattr." + capabilityXattr: capability}
	}
	return layer.Entry{Header: h, Open: open}, nil
}

// opener returns an Entry.Open that reads rel below dir, confined to dir.
func opener(dir, rel string, size int64) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", rel, err)
		}
		defer root.Close()
		f, err := root.OpenFile(filepath.FromSlash(rel), os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", rel, err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("opening %s: %w", rel, err)
		}
		if !fi.Mode().IsRegular() || fi.Size() != size {
			f.Close()
			return nil, fmt.Errorf("opening %s: changed since the diff (now %v, %d bytes; was a %d-byte file)", rel, fi.Mode().Type(), fi.Size(), size)
		}
		return f, nil
	}
}

// ignored reports whether rel or one of its parents is in ignore.
func ignored(rel string, ignore map[string]struct{}) bool {
	for p := rel; p != "."; p = path.Dir(p) {
		if _, ok := ignore[p]; ok {
			return true
		}
	}
	return false
}

// comparePaths orders slash-separated paths as a directory walk visits them
// (and as layer.New writes them): name by name, a parent before its children.
func comparePaths(a, b string) int {
	for {
		ai, bi := strings.IndexByte(a, '/'), strings.IndexByte(b, '/')
		an, bn := a, b
		if ai >= 0 {
			an = a[:ai]
		}
		if bi >= 0 {
			bn = b[:bi]
		}
		if c := strings.Compare(an, bn); c != 0 {
			return c
		}
		switch {
		case ai < 0 && bi < 0:
			return 0
		case ai < 0:
			return -1
		case bi < 0:
			return 1
		}
		a, b = a[ai+1:], b[bi+1:]
	}
}
