package layer

import (
	"errors"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"
)

// FileLayer is a gzipped layer stored in a file whose digests are known
// (a layer cache entry): nothing is hashed when it is used, and the file
// is opened on each read.
type FileLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
	top            []string // nil: unknown
}

var _ v1.Layer = (*FileLayer)(nil)

// OpenFile returns the layer stored gzipped at path, with the digest
// (of the file), diff ID (of the tar), size and top-level names (nil when
// unknown; see Layer.TopLevelNames) recorded when it was stored. The file
// must be as long as size.
func OpenFile(path string, digest, diffID v1.Hash, size int64, top []string) (*FileLayer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening layer: %w", err)
	}
	if fi.Size() != size {
		return nil, fmt.Errorf("opening layer %s: %d bytes, want %d", path, fi.Size(), size)
	}
	return &FileLayer{path: path, digest: digest, diffID: diffID, size: size, top: top}, nil
}

// TopLevelNames returns the top-level names recorded with the layer, nil
// when unknown.
func (l *FileLayer) TopLevelNames() []string { return l.top }

// Digest returns the digest of the gzipped file.
func (l *FileLayer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID returns the digest of the tar.
func (l *FileLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Size returns the size of the gzipped file.
func (l *FileLayer) Size() (int64, error) { return l.size, nil }

// MediaType is types.OCILayer, as for layers New writes.
func (l *FileLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

// Compressed opens the file.
func (l *FileLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("reading layer: %w", err)
	}
	return f, nil
}

// Uncompressed returns the tar, decompressed as it is read.
func (l *FileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("reading layer: %w", err)
	}
	return Gunzip(f)
}

// Gunzip returns the decompressed stream of the gzip stream rc (with
// pgzip, decoding ahead); closing it closes rc. rc is closed on error.
func Gunzip(rc io.ReadCloser) (io.ReadCloser, error) {
	zr, err := pgzip.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("reading gzipped layer: %w", err)
	}
	return &gunzipped{Reader: zr, zr: zr, rc: rc}, nil
}

// gunzipped closes the decompressor and the stream under it.
type gunzipped struct {
	io.Reader
	zr *pgzip.Reader
	rc io.ReadCloser
}

func (g *gunzipped) Close() error { return errors.Join(g.zr.Close(), g.rc.Close()) }
