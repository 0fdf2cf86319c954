package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/stream"
)

// randomEntries is one file of n random (incompressible) bytes.
func randomEntries(t *testing.T, n int) []Entry {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return []Entry{{
		Header: &tar.Header{Typeflag: tar.TypeReg, Name: "blob", Size: int64(n), Mode: 0o644},
		Open:   func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
	}}
}

func TestWithStream(t *testing.T) {
	t.Parallel()
	t.Run("read as written", func(t *testing.T) {
		t.Parallel()
		type result struct {
			data          []byte
			err           error
			before, after error
			digest        v1.Hash
		}
		got := make(chan result, 1)
		start := func(sl v1.Layer) {
			_, before := sl.Digest()
			go func() {
				rc, err := sl.Compressed()
				if err != nil {
					got <- result{err: err}
					return
				}
				defer rc.Close()
				data, err := io.ReadAll(rc)
				d, after := sl.Digest()
				got <- result{data: data, err: err, before: before, after: after, digest: d}
			}()
		}
		l, err := New(context.Background(), randomEntries(t, 3<<20), WithStream(start))
		if err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !errors.Is(r.before, stream.ErrNotComputed) {
			t.Errorf("Digest before the end: %v, want stream.ErrNotComputed", r.before)
		}
		want, _ := l.Digest()
		if r.after != nil || r.digest != want {
			t.Errorf("Digest after the end: %v %v, want %v", r.digest, r.after, want)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		full, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.data, full) {
			t.Errorf("streamed %d bytes, the layer has %d (or they differ)", len(r.data), len(full))
		}
	})
	t.Run("a reader that does not read does not block New", func(t *testing.T) {
		t.Parallel()
		var sl v1.Layer
		l, err := New(context.Background(), randomEntries(t, 80<<20), WithStream(func(s v1.Layer) { sl = s }), WithTempDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		defer l.(*Layer).Close()
		rc, err := sl.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(rc); !errors.Is(err, errStreamBehind) {
			t.Errorf("reading a stream left behind: %v, want errStreamBehind", err)
		}
		if _, err := sl.Compressed(); err == nil {
			t.Error("the stream could be read twice")
		}
	})
}
