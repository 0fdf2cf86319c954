package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/pgzip"
)

// Defaults of the writer. They are part of the digest: changing the level or
// the block size changes every layer digest ship produces.
const (
	// DefaultMemoryThreshold is the compressed size up to which a layer is
	// kept in memory; larger layers are spooled to a temporary file.
	DefaultMemoryThreshold = 32 << 20

	compressionLevel = pgzip.BestSpeed
	gzipBlockSize    = 1 << 20
)

// Option configures New.
type Option func(*options) error

type options struct {
	epoch     *time.Time
	tempDir   string
	threshold int64
	blocks    int // gzip blocks compressed in parallel; does not change the output
	stream    func(v1.Layer)
}

// WithEpoch clamps every ModTime later than t to t (SOURCE_DATE_EPOCH), as
// BuildKit does with rewrite-timestamp. Earlier times are kept.
func WithEpoch(t time.Time) Option {
	return func(o *options) error {
		t = t.Truncate(time.Second)
		o.epoch = &t
		return nil
	}
}

// WithTempDir sets the directory where compressed data larger than the
// memory threshold is spooled (default: os.TempDir()). The file is unlinked
// as soon as it is created, so nothing is left behind whatever happens to the
// process; its space is released when the layer is closed (see New) or
// garbage collected.
func WithTempDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("empty temp dir")
		}
		o.tempDir = dir
		return nil
	}
}

// WithMemoryThreshold sets the compressed size in bytes up to which a layer
// is kept in memory (default DefaultMemoryThreshold). 0 spools every layer.
func WithMemoryThreshold(n int64) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("negative memory threshold %d", n)
		}
		o.threshold = n
		return nil
	}
}

// Layer is the layer New returns. Its contents can be read any number of
// times, concurrently. Close releases a spooled temporary file early; it is a
// no-op for in-memory layers, and reading a closed spooled layer fails.
type Layer struct {
	digest, diffID v1.Hash
	size           int64
	uncompSize     int64

	spooled bool
	mem     []byte // compressed bytes when kept in memory

	mu   sync.Mutex
	file *os.File // unlinked spool file, when not in memory

	top []string // the first component of every entry's name, sorted, once each
}

var _ v1.Layer = (*Layer)(nil)

// New writes entries as one layer: a tar sorted by path (parents before
// children, compared name by name as a directory walk visits them), with
// uid/gid/mode as given, directories with a trailing "/", no uname/gname,
// ModTime truncated to the second (clamped with WithEpoch), AccessTime and
// ChangeTime dropped (a zero ModTime is written as the Unix epoch). Headers are written in USTAR form, with PAX records
// only when a field needs them (long names, big ids, xattrs in PAXRecords),
// as containerd's tar writer does. The tar is gzipped with pgzip at a fixed
// level and block size and with an empty gzip header, so equal entries give
// equal digests; the DiffID and the Digest are computed in the same pass.
//
// Names must be relative, clean, slash-separated paths ("a/b"), unique, and
// must not contain "..". Entries may come in any order; New does not add
// missing parent directories.
//
// The result is an OCI layer (types.OCILayer). When its compressed size
// exceeds the memory threshold it is spooled to an unlinked temporary file;
// call (*Layer).Close (the returned v1.Layer implements io.Closer) to release
// it before the layer is garbage collected.
func New(ctx context.Context, entries []Entry, opts ...Option) (v1.Layer, error) {
	o := options{threshold: DefaultMemoryThreshold, blocks: min(max(runtime.GOMAXPROCS(0), 2), 8)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("configuring layer: %w", err)
		}
	}
	sorted, err := prepare(entries, o.epoch)
	if err != nil {
		return nil, err
	}

	sp := &spool{threshold: o.threshold, dir: o.tempDir}
	var sl *streamLayer
	if o.stream != nil {
		sl = newStreamLayer()
		o.stream(sl)
	}
	l, err := write(ctx, sorted, sp, o.blocks, sl)
	if sl != nil {
		sl.finish(l, err)
	}
	if err != nil {
		sp.discard()
		return nil, err
	}
	return l, nil
}

type prepared struct {
	hdr  *tar.Header
	key  []string // name split on "/", for sorting
	open func() (io.ReadCloser, error)
}

// prepare validates and normalises entries and sorts them.
func prepare(entries []Entry, epoch *time.Time) ([]prepared, error) {
	out := make([]prepared, 0, len(entries))
	seen := make(map[string]struct{}, len(entries))
	for i, e := range entries {
		if e.Header == nil {
			return nil, fmt.Errorf("checking layer entry %d: nil header", i)
		}
		h := e.Header
		name := h.Name
		if h.Typeflag == tar.TypeDir {
			name = strings.TrimSuffix(name, "/")
		}
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("checking layer entry %q: %w", h.Name, err)
		}
		if _, dup := seen[name]; dup {
			return nil, fmt.Errorf("checking layer entry %q: duplicate path", name)
		}
		seen[name] = struct{}{}

		n := &tar.Header{
			Typeflag: h.Typeflag,
			Name:     name,
			Linkname: h.Linkname,
			Mode:     h.Mode & 07777,
			Uid:      h.Uid,
			Gid:      h.Gid,
			ModTime:  h.ModTime.Truncate(time.Second),
			Devmajor: h.Devmajor,
			Devminor: h.Devminor,
			Format:   tar.FormatPAX,
		}
		if len(h.PAXRecords) > 0 {
			n.PAXRecords = make(map[string]string, len(h.PAXRecords))
			for k, v := range h.PAXRecords {
				// Keep only extended attributes: everything else is derived
				// from the header fields by the tar writer.
				if strings.HasPrefix(k, "SCHILY.xattr.") {
					n.PAXRecords[k] = v
				}
			}
		}
		if n.ModTime.IsZero() {
			n.ModTime = time.Unix(0, 0)
		}
		if epoch != nil && n.ModTime.After(*epoch) {
			n.ModTime = *epoch
		}
		var open func() (io.ReadCloser, error)
		switch n.Typeflag {
		case tar.TypeReg, tar.TypeRegA:
			n.Typeflag = tar.TypeReg
			n.Size = h.Size
			if n.Size < 0 {
				return nil, fmt.Errorf("checking layer entry %q: negative size %d", name, n.Size)
			}
			if n.Size > 0 && e.Open == nil {
				return nil, fmt.Errorf("checking layer entry %q: regular file of %d bytes without content", name, n.Size)
			}
			open = e.Open
		case tar.TypeDir:
			n.Name = name + "/"
		case tar.TypeSymlink:
			if h.Linkname == "" {
				return nil, fmt.Errorf("checking layer entry %q: symlink without target", name)
			}
		case tar.TypeLink:
			if err := checkName(h.Linkname); err != nil {
				return nil, fmt.Errorf("checking layer entry %q: hardlink target %q: %w", name, h.Linkname, err)
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		default:
			return nil, fmt.Errorf("checking layer entry %q: unsupported type %q", name, h.Typeflag)
		}
		out = append(out, prepared{hdr: n, key: strings.Split(name, "/"), open: open})
	}
	sort.Slice(out, func(i, j int) bool { return lessPath(out[i].key, out[j].key) })
	return out, nil
}

// lessPath orders paths as a directory walk visits them: component by
// component, a parent before its children.
func lessPath(a, b []string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func checkName(name string) error {
	switch {
	case name == "" || name == ".":
		return errors.New("empty path")
	case strings.HasPrefix(name, "/"):
		return errors.New("absolute path")
	case name == ".." || strings.HasPrefix(name, "../") || strings.HasSuffix(name, "/..") || strings.Contains(name, "/../"):
		return errors.New("path contains \"..\"")
	case path.Clean(name) != name:
		return errors.New("path is not clean")
	case strings.ContainsRune(name, 0):
		return errors.New("path contains a NUL byte")
	}
	return nil
}

// countWriter counts and hashes what goes through it.
type hashCounter struct {
	h hash.Hash
	n int64
}

func (c *hashCounter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func write(ctx context.Context, entries []prepared, sp *spool, blocks int, sl *streamLayer) (*Layer, error) {
	compHash := &hashCounter{h: sha256.New()}
	var out io.Writer = io.MultiWriter(compHash, sp)
	if sl != nil {
		out = io.MultiWriter(compHash, sp, sl)
	}
	zw, err := pgzip.NewWriterLevel(out, compressionLevel)
	if err != nil {
		return nil, fmt.Errorf("creating gzip writer: %w", err)
	}
	if err := zw.SetConcurrency(gzipBlockSize, blocks); err != nil {
		return nil, fmt.Errorf("creating gzip writer: %w", err)
	}
	// A zero time would be written as a negative Unix time: write 0 instead.
	zw.ModTime = time.Unix(0, 0)
	zw.OS = 255

	uncompHash := &hashCounter{h: sha256.New()}
	werr := writeTar(ctx, io.MultiWriter(uncompHash, zw), entries)
	cerr := zw.Close()
	if werr != nil {
		return nil, fmt.Errorf("writing layer: %w", werr)
	}
	if cerr != nil {
		return nil, fmt.Errorf("writing layer: compressing: %w", cerr)
	}
	if sp.err != nil {
		return nil, fmt.Errorf("writing layer: spooling: %w", sp.err)
	}
	l := &Layer{
		digest:     v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", compHash.h.Sum(nil))},
		diffID:     v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", uncompHash.h.Sum(nil))},
		size:       compHash.n,
		uncompSize: uncompHash.n,
		mem:        sp.bytes(),
		file:       sp.file,
		spooled:    sp.file != nil,
	}
	if l.spooled {
		l.mem = nil
	}
	l.top = topLevel(entries)
	return l, nil
}

// topLevel returns the first name component of entries, sorted, once
// each (entries are sorted by path, so equal components are adjacent).
func topLevel(entries []prepared) []string {
	top := []string{}
	for _, e := range entries {
		if len(e.key) == 0 || e.key[0] == "" || e.key[0] == "." {
			continue
		}
		if n := len(top); n == 0 || top[n-1] != e.key[0] {
			top = append(top, e.key[0])
		}
	}
	slices.Sort(top)
	return slices.Compact(top)
}

// TopLevelNames returns the first component of the name of every entry of
// the layer ("usr", ".wh.tmp"): a lookup of a path whose first component
// is not there (nor its whiteout, nor an opaque marker of the root) need
// not read the layer. See rootfs.TopLevelNamer.
func (l *Layer) TopLevelNames() []string { return l.top }

// WriteTar writes entries as an uncompressed tar stream to w, prepared and
// ordered exactly as New writes them (epoch clamping included), for callers
// that unpack the entries at once and need no layer.
func WriteTar(ctx context.Context, w io.Writer, entries []Entry, opts ...Option) error {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return fmt.Errorf("configuring tar: %w", err)
		}
	}
	sorted, err := prepare(entries, o.epoch)
	if err != nil {
		return err
	}
	return writeTar(ctx, w, sorted)
}

// writeTar writes the tar stream of prepared entries to w.
func writeTar(ctx context.Context, w io.Writer, entries []prepared) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 256<<10)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := tw.WriteHeader(e.hdr); err != nil {
			return fmt.Errorf("writing %q: %w", e.hdr.Name, err)
		}
		if e.hdr.Size == 0 {
			continue
		}
		if err := copyContent(ctx, tw, e, buf); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("closing tar: %w", err)
	}
	return nil
}

func copyContent(ctx context.Context, w io.Writer, e prepared, buf []byte) error {
	rc, err := e.open()
	if err != nil {
		return fmt.Errorf("opening %q: %w", e.hdr.Name, err)
	}
	defer rc.Close()
	var n int64
	for n < e.hdr.Size {
		if err := ctx.Err(); err != nil {
			return err
		}
		want := min(int64(len(buf)), e.hdr.Size-n)
		m, err := io.ReadFull(rc, buf[:want])
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return fmt.Errorf("writing %q: %w", e.hdr.Name, werr)
			}
			n += int64(m)
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fmt.Errorf("reading %q: got %d bytes, header says %d", e.hdr.Name, n, e.hdr.Size)
			}
			return fmt.Errorf("reading %q: %w", e.hdr.Name, err)
		}
	}
	// The content must not be longer than announced (a file that grew while
	// being read would otherwise be silently truncated).
	var one [1]byte
	if m, _ := io.ReadFull(rc, one[:]); m > 0 {
		return fmt.Errorf("reading %q: content is longer than the %d bytes of its header", e.hdr.Name, e.hdr.Size)
	}
	return nil
}

// spool keeps written bytes in memory up to threshold, then moves them to an
// unlinked temporary file. Memory is kept in fixed-size chunks so that it
// never holds more than threshold plus one chunk.
type spool struct {
	threshold int64
	dir       string
	chunks    [][]byte
	n         int64
	file      *os.File
	err       error
}

const spoolChunk = 1 << 20

func (s *spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.file == nil && s.n+int64(len(p)) > s.threshold {
		if err := s.toFile(); err != nil {
			s.err = err
			return 0, err
		}
	}
	if s.file != nil {
		n, err := s.file.Write(p)
		if err != nil {
			s.err = fmt.Errorf("writing spool file: %w", err)
		}
		return n, s.err
	}
	total := len(p)
	for len(p) > 0 {
		if len(s.chunks) == 0 || len(s.chunks[len(s.chunks)-1]) == cap(s.chunks[len(s.chunks)-1]) {
			s.chunks = append(s.chunks, make([]byte, 0, min(spoolChunk, max(s.threshold, 64<<10))))
		}
		c := &s.chunks[len(s.chunks)-1]
		m := min(cap(*c)-len(*c), len(p))
		*c = append(*c, p[:m]...)
		p = p[m:]
	}
	s.n += int64(total)
	return total, nil
}

func (s *spool) toFile() error {
	f, err := os.CreateTemp(s.dir, "ship-layer-*.tar.gz")
	if err != nil {
		return fmt.Errorf("creating spool file: %w", err)
	}
	// Unlink at once: the open descriptor keeps the data readable and the
	// space is released when it is closed, whatever happens next.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return fmt.Errorf("unlinking spool file: %w", err)
	}
	s.file = f
	for _, c := range s.chunks {
		if _, err := f.Write(c); err != nil {
			return fmt.Errorf("writing spool file: %w", err)
		}
	}
	s.chunks = nil
	return nil
}

// bytes returns the in-memory content in one slice.
func (s *spool) bytes() []byte {
	if len(s.chunks) == 1 {
		return s.chunks[0]
	}
	b := make([]byte, 0, s.n)
	for _, c := range s.chunks {
		b = append(b, c...)
	}
	return b
}

func (s *spool) discard() {
	if s.file != nil {
		s.file.Close()
	}
	s.chunks = nil
}

// Digest returns the sha256 of the compressed layer.
func (l *Layer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID returns the sha256 of the uncompressed tar.
func (l *Layer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Size returns the compressed size in bytes.
func (l *Layer) Size() (int64, error) { return l.size, nil }

// UncompressedSize returns the size of the uncompressed tar in bytes.
func (l *Layer) UncompressedSize() int64 { return l.uncompSize }

// MediaType returns types.OCILayer.
func (l *Layer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

// Compressed returns the gzipped tar.
func (l *Layer) Compressed() (io.ReadCloser, error) {
	if !l.spooled {
		return io.NopCloser(bytes.NewReader(l.mem)), nil
	}
	l.mu.Lock()
	f := l.file
	l.mu.Unlock()
	if f == nil {
		return nil, errors.New("reading layer: layer is closed")
	}
	return io.NopCloser(io.NewSectionReader(f, 0, l.size)), nil
}

// Uncompressed returns the tar.
func (l *Layer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		return nil, fmt.Errorf("reading layer: %w", err)
	}
	return zr, nil
}

// Close releases the spooled temporary file, if any.
func (l *Layer) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}
