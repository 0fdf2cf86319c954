package gitcommit

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// maxObjectSize bounds every object and delta read (a commit larger than
// this is an error).
const maxObjectSize = 1 << 20

// Object types, as numbered in pack files.
const (
	objCommit   = 1
	objTree     = 2
	objBlob     = 3
	objTag      = 4
	objOfsDelta = 6
	objRefDelta = 7
)

// typeNames maps the types of whole objects to their names in loose object
// headers and object hashes.
var typeNames = map[int]string{objCommit: "commit", objTree: "tree", objBlob: "blob", objTag: "tag"}

// isHexID reports whether s is a lower-case hex SHA-1 object id.
func isHexID(s string) bool {
	if len(s) != 2*sha1.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// readObject returns the type and content of object id, loose or packed,
// after checking it hashes to id.
func (r *repo) readObject(id string) (int, []byte, error) {
	if !isHexID(id) {
		return 0, nil, fmt.Errorf("invalid object id %q", truncate(id))
	}
	typ, data, err := r.readObjectUnchecked(id, 0)
	if err != nil {
		return 0, nil, err
	}
	if got := hashObject(typ, data); got != id {
		return 0, nil, fmt.Errorf("object %s is corrupt: content hashes to %s", id, got)
	}
	return typ, data, nil
}

// readObjectUnchecked looks id up in every object directory: loose first,
// then in the packs. depth counts the deltas already being resolved.
func (r *repo) readObjectUnchecked(id string, depth int) (int, []byte, error) {
	for _, dir := range r.objectDirs {
		typ, data, err := readLoose(dir, id)
		if err == nil {
			return typ, data, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return 0, nil, err
		}
	}
	raw, _ := hex.DecodeString(id)
	p, off, err := r.findPacked(raw)
	if err != nil {
		return 0, nil, err
	}
	if p == nil {
		return 0, nil, fmt.Errorf("object %s: not found", id)
	}
	return r.readPacked(p, off, depth)
}

// readLoose reads a loose object; the error wraps fs.ErrNotExist if there
// is no such file.
func readLoose(objectsDir, id string) (int, []byte, error) {
	path := filepath.Join(objectsDir, id[:2], id[2:])
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	zr, err := zlib.NewReader(f)
	if err != nil {
		return 0, nil, fmt.Errorf("loose object %s: %w", id, err)
	}
	defer zr.Close()
	// Header "TYPE SIZE\0": a type name and up to 7 digits fit in 32 bytes.
	b, err := io.ReadAll(io.LimitReader(zr, maxObjectSize+32+1))
	if err != nil {
		return 0, nil, fmt.Errorf("loose object %s: %w", id, err)
	}
	nul := bytes.IndexByte(b, 0)
	if nul < 0 || nul > 32 {
		return 0, nil, fmt.Errorf("loose object %s: invalid header", id)
	}
	name, sizeText, ok := bytes.Cut(b[:nul], []byte(" "))
	typ := typeOf(string(name))
	size, err := strconv.ParseUint(string(sizeText), 10, 32)
	if !ok || typ == 0 || err != nil {
		return 0, nil, fmt.Errorf("loose object %s: invalid header", id)
	}
	if size > maxObjectSize {
		return 0, nil, fmt.Errorf("loose object %s: %d bytes, more than the %d allowed", id, size, maxObjectSize)
	}
	data := b[nul+1:]
	if uint64(len(data)) != size {
		return 0, nil, fmt.Errorf("loose object %s: header says %d bytes, found %d", id, size, len(data))
	}
	return typ, data, nil
}

// typeOf returns the type number of an object type name, or 0.
func typeOf(name string) int {
	for t, n := range typeNames {
		if n == name {
			return t
		}
	}
	return 0
}

// hashObject returns the hex SHA-1 id of an object of type typ.
func hashObject(typ int, data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", typeNames[typ], len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}
