package build

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/intesys/ship-action/internal/layer"
	"github.com/intesys/ship-action/internal/rootfs"
)

// layerCache keeps the layers RUN made between builds, in a directory
// (<cache-dir>/layers): keys/<key>.json names the layer a RUN with that
// cache key made, blobs/<digest> holds it gzipped. Entries are written to
// a temporary name and renamed, so concurrent builds sharing the
// directory see whole entries or none. PruneCache evicts the least
// recently used.
type layerCache struct {
	dir string
}

// cacheRecord is a keys/<key>.json file.
type cacheRecord struct {
	Digest v1.Hash  `json:"digest"`
	DiffID v1.Hash  `json:"diffID"`
	Size   int64    `json:"size"`
	Top    []string `json:"top,omitempty"` // the layer's top-level names, when known
}

// newLayerCache opens (creating) the layer cache in dir.
func newLayerCache(dir string) (*layerCache, error) {
	for _, d := range []string{"keys", "blobs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("creating layer cache: %w", err)
		}
	}
	return &layerCache{dir: dir}, nil
}

// get returns the layer stored for key; ok is false on a miss (or an
// entry that is damaged, which counts as a miss).
func (c *layerCache) get(key string) (l v1.Layer, ok bool) {
	b, err := os.ReadFile(filepath.Join(c.dir, "keys", key+".json"))
	if err != nil {
		return nil, false
	}
	var rec cacheRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Digest.Algorithm != "sha256" {
		return nil, false
	}
	fl, err := layer.OpenFile(c.blobPath(rec.Digest), rec.Digest, rec.DiffID, rec.Size, rec.Top)
	if err != nil {
		return nil, false
	}
	touch(filepath.Join(c.dir, "keys", key+".json")) // its last use, for PruneCache
	return fl, true
}

// put stores l as the layer of key.
func (c *layerCache) put(key string, l v1.Layer) error {
	desc, err := partial.Descriptor(l)
	if err != nil {
		return err
	}
	diffID, err := l.DiffID()
	if err != nil {
		return err
	}
	digest, size := desc.Digest, desc.Size
	blob := c.blobPath(digest)
	if fi, err := os.Stat(blob); err != nil || fi.Size() != size {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = c.writeFile(blob, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	rec, err := json.Marshal(cacheRecord{Digest: digest, DiffID: diffID, Size: size, Top: rootfs.TopLevelNames(l)})
	if err != nil {
		return err
	}
	return c.writeFile(filepath.Join(c.dir, "keys", key+".json"), bytes.NewReader(rec))
}

func (c *layerCache) blobPath(d v1.Hash) string {
	return filepath.Join(c.dir, "blobs", d.Algorithm+"-"+d.Hex)
}

// writeFile writes r to path through a temporary file renamed into place.
func (c *layerCache) writeFile(path string, r io.Reader) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return fmt.Errorf("writing layer cache: %w", err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing layer cache: %w", err)
	}
	return nil
}

// cacheKey hashes the parts that determine a layer into a key.
type cacheKey struct {
	parts []string
}

// add appends parts, each length-prefixed so that no two lists give the
// same bytes.
func (k *cacheKey) add(parts ...string) *cacheKey {
	k.parts = append(k.parts, parts...)
	return k
}

// sum returns the key: the hex SHA-256 of the parts.
func (k *cacheKey) sum() string {
	h := sha256.New()
	for _, p := range k.parts {
		io.WriteString(h, strconv.Itoa(len(p))+":"+p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// contentKey hashes what a layer holds, not when it was made: names,
// types, modes, owners, link targets, device numbers, xattrs and bytes,
// without the times (a fresh checkout gives files new mtimes; BuildKit's
// cache does not look at them either).
func contentKey(l v1.Layer) (string, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("reading layer: %w", err)
		}
		pax := make([]string, 0, len(hdr.PAXRecords))
		for k, v := range hdr.PAXRecords {
			switch k {
			case "mtime", "atime", "ctime":
				continue
			}
			pax = append(pax, k+"="+v)
		}
		slices.Sort(pax)
		fmt.Fprintf(h, "%q %c %o %d %d %q %d %d %d %q\n", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid,
			hdr.Linkname, hdr.Size, hdr.Devmajor, hdr.Devminor, pax)
		if _, err := io.Copy(h, tr); err != nil {
			return "", fmt.Errorf("reading layer: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
