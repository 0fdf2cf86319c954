package scan

import (
	"archive/tar"
	"bytes"
	"io"
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// uncompressedOnly is a layer known by its uncompressed content only, as
// partial.UncompressedToLayer makes them.
type uncompressedOnly struct {
	content []byte
	diffID  v1.Hash
}

func (u *uncompressedOnly) DiffID() (v1.Hash, error) { return u.diffID, nil }
func (u *uncompressedOnly) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(u.content)), nil
}
func (u *uncompressedOnly) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }

// oneLayer is an image of which only LayerByDiffID is used.
type oneLayer struct {
	v1.Image
	layer v1.Layer
}

func (o oneLayer) LayerByDiffID(v1.Hash) (v1.Layer, error) { return o.layer, nil }

// TestLayerByDiffID: gzip layers reach Trivy wrapped (decompressed with
// pgzip) with the same content; layers Trivy takes as uncompressed (a
// struct with an UncompressedLayer field) reach it unchanged, so that it
// does not ask for their digest; layers of other kinds are wrapped, so that
// its reflection does not panic.
func TestLayerByDiffID(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := bytes.Repeat([]byte("ship layer "), 1000)
	if err := tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	tw.Close()
	tarBytes := buf.Bytes()

	gz, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarBytes)), nil })
	if err != nil {
		t.Fatal(err)
	}
	diffID, _ := gz.DiffID()
	unc, err := partial.UncompressedToLayer(&uncompressedOnly{content: tarBytes, diffID: diffID})
	if err != nil {
		t.Fatal(err)
	}
	plain := static.NewLayer(tarBytes, types.MediaType("application/vnd.example.plain"))
	plainDiffID, _ := plain.DiffID()

	for _, tc := range []struct {
		name    string
		layer   v1.Layer
		diffID  v1.Hash
		wrapped bool
	}{
		{"gzip", gz, diffID, true},
		{"uncompressed", unc, diffID, false},
		{"other media type", plain, plainDiffID, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := (&trivyImage{Image: oneLayer{layer: tc.layer}}).LayerByDiffID(tc.diffID)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := got.(*gzipLayer); ok != tc.wrapped {
				t.Fatalf("layer %T wrapped = %v, want %v", got, ok, tc.wrapped)
			}
			// Trivy's test for a compressed layer must not panic.
			_, _ = reflect.TypeOf(got).Elem().FieldByName("UncompressedLayer")
			rc, err := got.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, tarBytes) {
				t.Errorf("uncompressed content differs: %d bytes, want %d", len(b), len(tarBytes))
			}
		})
	}
}
