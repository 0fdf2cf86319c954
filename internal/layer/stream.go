package layer

import (
	"errors"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// streamChunks is how many writes of compressed data (up to a gzip block
// each) a stream buffers before New gives up feeding it.
const streamChunks = 32

// errStreamBehind ends a stream whose reader fell too far behind.
var errStreamBehind = errors.New("layer stream: the reader fell behind; the layer is written without it")

// WithStream hands the compressed layer to start while New writes it:
// start is called once, before anything is compressed, with a v1.Layer
// whose Compressed returns the compressed bytes as New produces them
// (readable once), and whose Digest, DiffID and Size return
// stream.ErrNotComputed until that stream has ended (go-containerregistry's
// remote.WriteLayer then uploads it as it comes, and asks for the digest at
// the end). start must not block: read the stream in a goroutine. New never
// waits for the reader: when it falls streamChunks writes behind, or closes
// the stream, New stops feeding it and the reader gets an error. The layer
// New returns is the same either way.
func WithStream(start func(v1.Layer)) Option {
	return func(o *options) error { o.stream = start; return nil }
}

// streamLayer is the layer WithStream hands over.
type streamLayer struct {
	chunks chan []byte
	free   chan []byte // consumed chunks, for reuse

	mu     sync.Mutex
	ended  bool  // chunks is closed
	err    error // why the stream ended early
	opened bool
	final  *Layer // set when New finished
}

func newStreamLayer() *streamLayer {
	return &streamLayer{chunks: make(chan []byte, streamChunks), free: make(chan []byte, streamChunks)}
}

// Write feeds the stream; it never blocks and never fails.
func (s *streamLayer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return len(p), nil
	}
	select {
	case s.chunks <- append(s.getChunk(len(p)), p...):
	default:
		s.endLocked(errStreamBehind)
	}
	return len(p), nil
}

// getChunk returns an empty buffer with room for n bytes: one the reader
// has consumed when there is one, so that a layer's compressed bytes pass
// through a few buffers instead of a fresh allocation per write (whose
// page faults and zeroing cost as much as the copy).
func (s *streamLayer) getChunk(n int) []byte {
	select {
	case b := <-s.free:
		if cap(b) >= n {
			return b[:0]
		}
	default:
	}
	return make([]byte, 0, max(n, 1<<20))
}

// putChunk gives a buffer the reader has consumed back.
func (s *streamLayer) putChunk(b []byte) {
	select {
	case s.free <- b[:0]:
	default:
	}
}

// finish ends the stream: with the finished layer, or with err.
func (s *streamLayer) finish(l *Layer, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.final = l
	}
	s.endLocked(err)
}

func (s *streamLayer) endLocked(err error) {
	if s.ended {
		return
	}
	s.ended = true
	s.err = err
	close(s.chunks)
}

// Compressed returns the stream (once).
func (s *streamLayer) Compressed() (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened {
		return nil, errors.New("layer stream: already read")
	}
	s.opened = true
	return &streamReader{s: s}, nil
}

func (s *streamLayer) result() (*Layer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.final == nil {
		return nil, stream.ErrNotComputed
	}
	return s.final, nil
}

// Digest returns the compressed digest once the stream has ended.
func (s *streamLayer) Digest() (v1.Hash, error) {
	l, err := s.result()
	if err != nil {
		return v1.Hash{}, err
	}
	return l.Digest()
}

// DiffID returns the uncompressed digest once the stream has ended.
func (s *streamLayer) DiffID() (v1.Hash, error) {
	l, err := s.result()
	if err != nil {
		return v1.Hash{}, err
	}
	return l.DiffID()
}

// Size returns the compressed size once the stream has ended.
func (s *streamLayer) Size() (int64, error) {
	l, err := s.result()
	if err != nil {
		return 0, err
	}
	return l.Size()
}

// Uncompressed is not available on a stream.
func (s *streamLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, errors.New("layer stream: only the compressed stream can be read")
}

// MediaType is that of the layers New writes.
func (s *streamLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

// streamReader reads a streamLayer's chunks.
type streamReader struct {
	s   *streamLayer
	buf []byte // the chunk being read, to recycle
	cur []byte // what is left of it
}

func (r *streamReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.buf != nil {
			r.s.putChunk(r.buf)
			r.buf = nil
		}
		c, ok := <-r.s.chunks
		if !ok {
			r.s.mu.Lock()
			err := r.s.err
			r.s.mu.Unlock()
			if err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		r.buf, r.cur = c, c
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the stream: New stops feeding it.
func (r *streamReader) Close() error {
	r.s.mu.Lock()
	r.s.endLocked(errors.New("layer stream: closed by its reader"))
	r.s.mu.Unlock()
	// Free what is buffered.
	for range r.s.chunks {
	}
	return nil
}
