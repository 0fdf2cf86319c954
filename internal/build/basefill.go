package build

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// baseFill is the creation of a base cache entry after the build has what
// it needs. Without overlay mounts a stage works on a private copy of its
// base; when the base is not cached yet, extracting it into the cache and
// then copying that would put two full writes of the base on the build's
// path. Instead the stage's directory is extracted straight from the
// registry while the layer streams the extraction reads (compressed for
// gzip layers, uncompressed for others) are also written to spool files,
// and the cache entry is extracted from those files in the background
// while the build goes on (Build waits for it before it returns). The
// entry's exclusive lock is held from the start, so other builds on the
// same base wait for the entry instead of extracting it too.
type baseFill struct {
	cache  *baseCache
	ids    []v1.Hash
	lk     *cacheLock
	dir    string // the spool directory
	layers []*spoolLayer
}

// spoolBase returns layers with its bottom ones (the external base's)
// wrapped so that extracting them also spools them, and the fill to finish
// once the extraction is done. It returns nil when the base is to come
// from the cache as usual: no cache, or an entry or a prefix of one exists
// already or is being made.
func (st *stageState) spoolBase(layers []v1.Layer) ([]v1.Layer, *baseFill) {
	n := st.cachedBaseLayers(layers)
	if n == 0 {
		return nil, nil
	}
	c := newBaseCache(st.b.opts.cacheDir)
	ids, err := chainIDs(layers[:n])
	if err != nil {
		return nil, nil
	}
	for _, id := range ids {
		if c.hasEntry(id.Hex) {
			return nil, nil // an entry to copy, whole or as a prefix
		}
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, nil
	}
	key := ids[n-1].Hex
	lk, got, err := c.tryLock(key, unix.LOCK_EX)
	if err != nil || !got {
		return nil, nil // being made: entry waits for it
	}
	if _, ok, err := c.readEntry(key); ok || err != nil {
		lk.unlock()
		return nil, nil
	}
	dir, err := os.MkdirTemp(st.b.tmpDir, "spool-")
	if err != nil {
		lk.unlock()
		return nil, nil
	}
	f := &baseFill{cache: c, ids: ids, lk: lk, dir: dir}
	wrapped := append([]v1.Layer(nil), layers...)
	for i, l := range layers[:n] {
		s := &spoolLayer{Layer: l, path: filepath.Join(dir, strconv.Itoa(i))}
		f.layers = append(f.layers, s)
		wrapped[i] = s
	}
	return wrapped, f
}

// finish starts the creation of the cache entry from the spool files when
// the stage's extraction succeeded and every layer was spooled whole;
// otherwise it gives the entry up (a later build makes it).
func (f *baseFill) finish(b *builder, extracted bool) {
	replay := make([]v1.Layer, len(f.layers))
	for i, s := range f.layers {
		kind := s.spooled.Load()
		if !extracted || kind == spoolNone {
			f.abandon()
			return
		}
		replay[i] = replayLayer{Layer: s.Layer, path: s.path, kind: kind}
	}
	b.fillWait.Go(func() {
		defer os.RemoveAll(f.dir)
		// The extraction's own work (creating the files) runs at the
		// lowest CPU priority, so that the RUN it overlaps keeps the CPU;
		// the thread ends with the goroutine, never running another one.
		runtime.LockOSThread()
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19) //nolint:errcheck // only a priority
		start := time.Now()
		root := filepath.Join(f.cache.dir, f.ids[len(f.ids)-1].Hex, entryRoot)
		e, err := f.cache.createLocked(b.runCtx, f.ids, replay, root, f.lk)
		if err != nil {
			if b.runCtx.Err() == nil {
				b.opts.logger.Warn("storing the base root file system in the cache failed", "err", err)
			}
			return
		}
		e.release()
		b.opts.logger.Debug("base root file system stored in the cache", "layers", len(replay), "duration", time.Since(start))
	})
}

func (f *baseFill) abandon() {
	f.lk.unlock()
	_ = os.RemoveAll(f.dir)
}

// Which stream of a layer its spool file holds.
const (
	spoolNone int32 = iota
	spoolCompressed
	spoolUncompressed
)

// spoolLayer is a layer whose stream, compressed or uncompressed (the one
// read), is also written to a file; spooled says which one the file holds
// whole, read to its end and verified by the registry client.
type spoolLayer struct {
	v1.Layer
	path    string
	spooled atomic.Int32
}

func (l *spoolLayer) Compressed() (io.ReadCloser, error) {
	return l.spool(l.Layer.Compressed, spoolCompressed)
}

func (l *spoolLayer) Uncompressed() (io.ReadCloser, error) {
	return l.spool(l.Layer.Uncompressed, spoolUncompressed)
}

func (l *spoolLayer) spool(open func() (io.ReadCloser, error), kind int32) (io.ReadCloser, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return rc, nil //nolint:nilerr // nothing spooled: the fill is given up, not the build
	}
	return &spoolReader{rc: rc, f: f, l: l, kind: kind}, nil
}

// spoolReader copies what is read to the spool file. A failing write only
// stops the spooling.
type spoolReader struct {
	rc   io.ReadCloser
	f    *os.File
	l    *spoolLayer
	kind int32
	werr error
	eof  bool
}

func (s *spoolReader) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	if n > 0 && s.werr == nil {
		_, s.werr = s.f.Write(p[:n])
	}
	if errors.Is(err, io.EOF) {
		s.eof = true
	}
	return n, err
}

func (s *spoolReader) Close() error {
	err := s.rc.Close()
	if ferr := s.f.Close(); ferr != nil && s.werr == nil {
		s.werr = ferr
	}
	if err == nil && s.eof && s.werr == nil {
		s.l.spooled.Store(s.kind)
	}
	return err
}

// replayLayer reads the stream a spool file holds from it (the other one
// from the layer: an extraction reads the same one again).
type replayLayer struct {
	v1.Layer
	path string
	kind int32
}

func (l replayLayer) Compressed() (io.ReadCloser, error) {
	if l.kind != spoolCompressed {
		return l.Layer.Compressed()
	}
	return l.open()
}

func (l replayLayer) Uncompressed() (io.ReadCloser, error) {
	if l.kind != spoolUncompressed {
		return l.Layer.Uncompressed()
	}
	return l.open()
}

func (l replayLayer) open() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("reading spooled layer: %w", err)
	}
	return f, nil
}
