package build

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LayerCacheSubdir is the directory under a cache dir that holds the
// layer cache of RUN layers (WithLayerCache) where PruneCache looks for it.
const LayerCacheSubdir = "layers"

// entrySize is the file of a root file system cache entry that records
// its size in bytes, written by PruneCache the first time it measures it.
const entrySize = "size"

// PruneStats says what PruneCache did.
type PruneStats struct {
	Before, After int64 // bytes held by the caches before and after
	Removed       int   // entries removed
	Busy          int   // entries over the limit but in use by another build: kept
}

// cacheUnit is what PruneCache removes at once: a root file system entry,
// or a layer blob with the keys that name it.
type cacheUnit struct {
	paths   []string // removed in order
	size    int64
	lastUse time.Time
	rootfs  string // the root file system entry's key, locked before removal
}

// PruneCache removes the least recently used entries of the caches Build
// keeps under cacheDir — extracted base root file systems (rootfs/) and
// RUN layers (layers/, see WithLayerCache) — until they hold at most
// maxBytes together. A use is a build reading the entry (its file times
// record it). Entries used at or after keep (the start of this run) are
// never removed, nor root file systems another build has locked; the
// caches can then stay above maxBytes. The vulnerability DB and the scan's
// layer cache are not touched.
func PruneCache(cacheDir string, maxBytes int64, keep time.Time) (PruneStats, error) {
	var units []cacheUnit
	rf, err := rootfsUnits(filepath.Join(cacheDir, rootfsCacheDir))
	if err != nil {
		return PruneStats{}, err
	}
	units = append(units, rf...)
	lc, err := layerUnits(filepath.Join(cacheDir, LayerCacheSubdir))
	if err != nil {
		return PruneStats{}, err
	}
	units = append(units, lc...)

	var st PruneStats
	for _, u := range units {
		st.Before += u.size
	}
	st.After = st.Before
	slices.SortFunc(units, func(a, b cacheUnit) int { return a.lastUse.Compare(b.lastUse) })
	bc := newBaseCache(cacheDir)
	for _, u := range units {
		if st.After <= maxBytes {
			break
		}
		if !u.lastUse.Before(keep) {
			continue
		}
		if u.rootfs != "" {
			lk, got, err := bc.tryLock(u.rootfs, unix.LOCK_EX)
			if err != nil {
				return st, err
			}
			if !got {
				st.Busy++
				continue
			}
			err = removeUnit(u)
			lk.unlock()
			if err != nil {
				return st, err
			}
		} else if err := removeUnit(u); err != nil {
			return st, err
		}
		st.After -= u.size
		st.Removed++
	}
	return st, nil
}

// removeUnit removes u's paths.
func removeUnit(u cacheUnit) error {
	for _, p := range u.paths {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// rootfsUnits lists the complete entries of the root file system cache in
// dir (entries being created have no report yet and are left alone).
func rootfsUnits(dir string) ([]cacheUnit, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []cacheUnit
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		entry := filepath.Join(dir, e.Name())
		fi, err := os.Stat(filepath.Join(entry, entryReport))
		if err != nil {
			continue
		}
		size, err := measuredSize(entry)
		if err != nil {
			return nil, err
		}
		out = append(out, cacheUnit{paths: []string{entry}, size: size, lastUse: fi.ModTime(), rootfs: e.Name()})
	}
	return out, nil
}

// measuredSize returns the bytes of the files of entry's root file system,
// from its size file or, the first time, by walking it (and then writes
// the size file: an entry never changes).
func measuredSize(entry string) (int64, error) {
	if b, err := os.ReadFile(filepath.Join(entry, entrySize)); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return n, nil
		}
	}
	var n int64
	err := filepath.WalkDir(filepath.Join(entry, entryRoot), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	_ = os.WriteFile(filepath.Join(entry, entrySize), []byte(strconv.FormatInt(n, 10)), 0o600)
	return n, nil
}

// layerUnits lists the blobs of the layer cache in dir, each with the keys
// that name it; its last use is its newest key's (or its own, when no key
// names it any more).
func layerUnits(dir string) ([]cacheUnit, error) {
	blobs, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	byBlob := map[string]*cacheUnit{}
	var order []string
	for _, b := range blobs {
		if strings.HasPrefix(b.Name(), ".") {
			continue
		}
		fi, err := b.Info()
		if err != nil {
			continue
		}
		byBlob[b.Name()] = &cacheUnit{size: fi.Size(), lastUse: fi.ModTime()}
		order = append(order, b.Name())
	}
	keys, err := os.ReadDir(filepath.Join(dir, "keys"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, k := range keys {
		if !strings.HasSuffix(k.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, "keys", k.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var rec cacheRecord
		if json.Unmarshal(data, &rec) != nil {
			continue
		}
		u := byBlob[rec.Digest.Algorithm+"-"+rec.Digest.Hex]
		fi, err := k.Info()
		if u == nil || err != nil {
			continue
		}
		u.paths = append(u.paths, path) // keys first: no key names a removed blob
		if fi.ModTime().After(u.lastUse) {
			u.lastUse = fi.ModTime()
		}
	}
	out := make([]cacheUnit, 0, len(order))
	for _, name := range order {
		u := byBlob[name]
		u.paths = append(u.paths, filepath.Join(dir, "blobs", name))
		out = append(out, *u)
	}
	return out, nil
}

// touch records a use of a cache file in its modification time.
func touch(path string) {
	now := time.Now()
	_ = os.Chtimes(path, now, now)
}
