package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// memUpper puts the upper directory of a RUN on overlay mounts in memory:
// a private tmpfs per stage, as the base in memory (memRoot). On this
// project's ext4 the RUN of bench/run-apt.sh (apt-get installing python3,
// 134 MB of changes) took a median 9.2 s with its upper directory on the
// disk and 8.3 s on a tmpfs (BENCHMARKS.md, issue 3): every file dpkg
// creates, renames and deletes is journaled on the disk.
//
// What a RUN writes is unbounded and an overlay's upper directory cannot
// move while the RUN runs, so a tmpfs that filled up would make the RUN
// fail, or worse succeed with a truncated file when its command ignores
// the error. The tmpfs is therefore never allowed to fill: it is sized at
// a memRootShare of the memory available (at least memUpperMin), and
// while the RUN runs its usage is read every memUpperPoll; once more than
// half of it (bytes or inodes) is used, it is doubled (remounted, up to
// memRootMax) if what it could then still take fits in half of the memory
// available, else the RUN is killed, its upper directory deleted, and it
// runs again from the start with its upper directory on the disk, as do
// the stage's later RUNs. Filling the other
// half between two readings would take writing memUpperMin/2 bytes within
// memUpperPoll (50 GB/s), beyond what a machine's memory takes, so no
// write to the tmpfs can fail with ENOSPC. A RUN starts in memory only
// when less than a quarter of the tmpfs is used (the stage's earlier RUNs
// stay there until the stage ends). The price is the time of the first
// attempt for the rare RUN that writes gigabytes.
//
// After the RUN its upper directory becomes a lower one and a new upper
// directory on the disk takes what the instructions other than RUN
// write (COPY, ADD), whose size is not watched.
const (
	// memUpperMin is the smallest tmpfs used for upper directories.
	memUpperMin = 1 << 30
	// memUpperPoll is how often the tmpfs's usage is read while a RUN
	// runs in it.
	memUpperPoll = 10 * time.Millisecond
	// memUpperMaxLowers: with this many lower directories, RUN's upper
	// directory goes to the disk (each RUN in memory adds up to two lower
	// directories, and the overlay's mount options are bounded:
	// maxOverlayOpts).
	memUpperMaxLowers = 32
)

// errMemUpperFull is the cause of a RUN killed because its upper directory
// outgrew the memory for it.
var errMemUpperFull = errors.New("RUN's changes outgrew the memory set aside for them")

// withMemoryUpper sets the size of the tmpfs RUN's upper directories are
// made in (tests): below 0 they are always on the disk; above 0 that size,
// whatever the memory available.
func withMemoryUpper(limit int64) Option {
	return func(o *options) error { o.memUpperLimit = limit; return nil }
}

// withAvailableMemory makes the memory available n bytes for the build's
// tmpfs mounts, the base's and RUN's upper directories' (tests).
func withAvailableMemory(n int64) Option {
	return func(o *options) error {
		o.memAvailable = func() (int64, bool) { return n, true }
		return nil
	}
}

// memUpper is the tmpfs of a stage's RUN upper directories.
type memUpper struct {
	dir     string
	avail   func() (int64, bool) // availableMemory, or a test's
	log     *slog.Logger
	spilled atomic.Bool // a RUN outgrew it: RUN works on the disk from then on
}

// available returns the memory the build may still use.
func (b *builder) available() (int64, bool) {
	if b.opts.memAvailable != nil {
		return b.opts.memAvailable()
	}
	return availableMemory()
}

// memUpperSize returns the size of the tmpfs for RUN's upper directories,
// or 0 when they should be on the disk.
func (b *builder) memUpperSize() int64 {
	limit := b.opts.memUpperLimit
	if limit != 0 {
		return max(limit, 0)
	}
	avail, ok := b.available()
	if !ok {
		return 0
	}
	size := min(avail/memRootShare, memRootMax)
	if size < memUpperMin {
		return 0
	}
	return size
}

// mountMemUpper mounts a tmpfs for RUN's upper directories at dir/mem and
// returns it with release extended to unmount it; it returns nil and
// release unchanged when the memory is too small or the mount is refused.
func (b *builder) mountMemUpper(dir string, release func()) (*memUpper, func()) {
	size := b.memUpperSize()
	if size == 0 {
		return nil, release
	}
	m := &memUpper{dir: filepath.Join(dir, "mem"), avail: b.available, log: b.opts.logger}
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		b.opts.logger.Debug("RUN's changes in memory unavailable", "err", err)
		return nil, release
	}
	if err := mountTmpfs(m.dir, size); err != nil {
		b.opts.logger.Debug("RUN's changes in memory unavailable", "err", err)
		_ = os.Remove(m.dir)
		return nil, release
	}
	return m, func() {
		if release != nil {
			release()
		}
		unmountTmpfs(m.dir)
	}
}

// tmpfsUsage is what a statfs of the tmpfs tells.
type tmpfsUsage struct {
	size, used int64   // bytes
	inodes     float64 // the part of its inodes in use
}

func (m *memUpper) usage() (tmpfsUsage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(m.dir, &st); err != nil {
		return tmpfsUsage{}, fmt.Errorf("reading the usage of the memory for RUN's changes: %w", err)
	}
	u := tmpfsUsage{size: int64(st.Blocks) * st.Bsize, used: int64(st.Blocks-st.Bfree) * st.Bsize}
	if st.Files > 0 {
		u.inodes = float64(st.Files-st.Ffree) / float64(st.Files)
	}
	return u, nil
}

// room reports whether a RUN may start with its upper directory in the
// tmpfs: no RUN outgrew it and less than a quarter of it is used.
func (m *memUpper) room() bool {
	if m.spilled.Load() {
		return false
	}
	u, err := m.usage()
	return err == nil && u.used*4 < u.size && u.inodes < 0.25
}

// outgrown reports whether more than half of the tmpfs is used (bytes or
// inodes, or its usage cannot be read) and it could not be doubled (a
// remount: its files stay, the RUN goes on), which takes the bytes being
// what is short and the memory available allowing it: what the tmpfs
// could then still take must fit in half of the memory available.
func (m *memUpper) outgrown() bool {
	u, err := m.usage()
	switch {
	case err != nil || u.inodes > 0.5:
		return true
	case u.used*2 <= u.size:
		return false
	}
	avail, ok := m.avail()
	next := min(u.size*2, memRootMax)
	if !ok || next <= u.size || next-u.used > avail/2 {
		return true
	}
	if err := unix.Mount("", m.dir, "", unix.MS_REMOUNT, "size="+strconv.FormatInt(next, 10)); err != nil {
		m.log.Debug("growing the memory for RUN's changes failed", "err", err)
		return true
	}
	m.log.Debug("memory for RUN's changes grown", "size", next, "used", u.used)
	return false
}

// watch returns the context to run a RUN whose upper directory is in the
// tmpfs with, cancelled (cause errMemUpperFull) when the tmpfs is
// outgrown, and the function to call when the RUN has ended, which reports
// whether the RUN was killed for that and must run again on the disk. A
// RUN that outgrew it in the last reading's interval is kept (the other
// half cannot have filled), but the stage's later RUNs go to the disk.
func (m *memUpper) watch(ctx context.Context) (context.Context, func() (killed bool)) {
	rctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	var outgrown atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(memUpperPoll)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-rctx.Done():
				return
			case <-t.C:
				if m.outgrown() {
					outgrown.Store(true)
					m.spilled.Store(true)
					cancel(errMemUpperFull)
					return
				}
			}
		}
	})
	return rctx, func() bool {
		close(stop)
		wg.Wait()
		cancel(nil)
		if m.outgrown() {
			m.spilled.Store(true)
		}
		return outgrown.Load()
	}
}
