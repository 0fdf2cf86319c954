package build

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/intesys/ship-action/internal/rootfs"
)

// memRoot puts the extraction of a base that is not in the cache in
// memory. With overlay mounts the base is the overlay's read-only lower
// directory; extracting it onto a disk file system makes the kernel
// create and journal every file of the image before the first RUN can
// start, and delete them all again after the build (a Debian base of
// 6,800 files: 1.3 to 3.8 s on this project's ext4, 1.0 to 1.3 s on
// tmpfs, where decompressing the layer is what is left). So the base goes
// to a private tmpfs mount, sized from the memory this process may use,
// which is unmounted (its memory freed at once, nothing to delete) when
// the stage's root file system is released. Only where the base has no
// cache entry (no cache, or the cache failed): making the entry from
// spooled layers while the RUN goes on, as without overlay (baseFill),
// was tried and slowed the RUN more than it saved (two builds measured:
// RUN 10.2 and 10.8 s against 8.1 and 9.0 s), so with a cache the base
// is extracted into the entry as before. A base
// that turns out larger than the mount (ENOSPC) is extracted onto the disk.
const (
	// memRootShare is the part of the available memory a base in memory
	// may take: the RUNs above it need the rest.
	memRootShare = 4
	// memRootMax caps a base in memory whatever the machine.
	memRootMax = 8 << 30
	// memRootRatio is how many times its compressed size a base is
	// assumed to take once extracted, to decide before extracting.
	memRootRatio = 4
)

// withMemoryRoot sets the size of the tmpfs a base is extracted into
// (tests): below 0 the base always goes to the disk.
func withMemoryRoot(limit int64) Option {
	return func(o *options) error { o.memRootLimit = limit; return nil }
}

// memRootSize returns the size of the tmpfs to extract layers into, or 0
// when they should go to the disk: their compressed size times
// memRootRatio must fit in a memRootShare of the memory available.
func (b *builder) memRootSize(layers []v1.Layer) int64 {
	limit := b.opts.memRootLimit
	if limit < 0 {
		return 0
	}
	if limit == 0 {
		avail, ok := b.available()
		if !ok {
			return 0
		}
		limit = min(avail/memRootShare, memRootMax)
	}
	var compressed int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil || n < 0 {
			return 0
		}
		compressed += n
	}
	if compressed*memRootRatio > limit {
		return 0
	}
	return limit
}

// privateBase extracts layers into dir/base, the overlay's lower directory
// of a stage whose base has no cache entry: with tryMemory into a tmpfs
// mounted there when they fit (memoryBase; release unmounts it), else, or
// when the tmpfs fills up, on the disk (release is nil).
func (st *stageState) privateBase(dir string, layers []v1.Layer, tryMemory bool) (base string, release func(), err error) {
	if tryMemory {
		base, release, err = st.memoryBase(dir, layers)
		if err != nil || base != "" {
			return base, release, err
		}
	}
	base = filepath.Join(dir, "base")
	if err := makeBaseDir(base); err != nil {
		return "", nil, err
	}
	st.b.opts.logger.Debug("extracting root file system", "stage", st.s.DisplayName(), "layers", len(layers))
	rep, err := rootfs.Extract(st.b.runCtx, base, layers)
	if err != nil {
		return "", nil, fmt.Errorf("extracting root file system: %w", err)
	}
	st.b.warnExtract(st.s.DisplayName(), rep)
	return base, nil, nil
}

// memoryBase extracts layers into a tmpfs mounted at dir/base (see
// memRoot) and returns it with the function that unmounts it; base is ""
// and dir/base does not exist when they do not fit (memRootSize), the
// mount is refused, or they fill the tmpfs up (ENOSPC).
func (st *stageState) memoryBase(dir string, layers []v1.Layer) (base string, release func(), err error) {
	base = filepath.Join(dir, "base")
	if err := makeBaseDir(base); err != nil {
		return "", nil, err
	}
	if len(layers) == 0 {
		return base, nil, nil
	}
	ctx, log := st.b.runCtx, st.b.opts.logger
	unmount := st.b.mountMemRoot(base, layers)
	if unmount == nil {
		return "", nil, os.Remove(base)
	}
	start := time.Now()
	rep, err := rootfs.Extract(ctx, base, layers)
	if err == nil {
		log.Debug("base root file system in memory", "stage", st.s.DisplayName(), "layers", len(layers), "duration", time.Since(start))
		st.b.warnExtract(st.s.DisplayName(), rep)
		return base, unmount, nil
	}
	unmount() // base is the empty directory again
	if !errors.Is(err, syscall.ENOSPC) || ctx.Err() != nil {
		return "", nil, fmt.Errorf("extracting root file system: %w", err)
	}
	log.Debug("base root file system larger than the memory for it: extracting it on the disk", "stage", st.s.DisplayName())
	return "", nil, os.Remove(base)
}

// makeBaseDir creates base, the empty lower directory of an overlay.
func makeBaseDir(base string) error {
	if err := os.Mkdir(base, 0o755); err != nil {
		return fmt.Errorf("creating root file system directory: %w", err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return fmt.Errorf("creating root file system directory: %w", err)
	}
	return nil
}

// mountMemRoot mounts a tmpfs at dir for layers when they fit
// (memRootSize) and returns the function that unmounts it; nil when they
// do not fit or the mount is refused.
func (b *builder) mountMemRoot(dir string, layers []v1.Layer) func() {
	size := b.memRootSize(layers)
	if size == 0 {
		return nil
	}
	if err := mountTmpfs(dir, size); err != nil {
		b.opts.logger.Debug("base root file system in memory unavailable", "err", err)
		return nil
	}
	return func() { unmountTmpfs(dir) }
}

// mountTmpfs mounts a tmpfs of size bytes at dir (an empty directory) when
// it keeps what a disk file system would: the user.* extended attributes
// tmpfs takes only since Linux 6.6 (a layer's, or a RUN's setfattr, would
// otherwise be lost, where docker build keeps them).
func mountTmpfs(dir string, size int64) error {
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755,size="+strconv.FormatInt(size, 10)); err != nil {
		return err
	}
	probe := filepath.Join(dir, ".xattr-probe")
	err := os.WriteFile(probe, nil, 0o600)
	if err == nil {
		err = unix.Setxattr(probe, "user.ship-probe", []byte("1"), 0)
		_ = os.Remove(probe)
	}
	if err != nil {
		unmountTmpfs(dir)
		return fmt.Errorf("tmpfs without user extended attributes: %w", err)
	}
	return nil
}

// unmountTmpfs unmounts the tmpfs at dir, its memory freed at once.
func unmountTmpfs(dir string) {
	if err := unix.Unmount(dir, 0); err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	}
}

// availableMemory returns the memory this process may still use: the
// kernel's MemAvailable, lowered to what the memory limit of its cgroup
// (v2, or v1's memory controller) leaves.
func availableMemory() (int64, bool) {
	avail, ok := memInfoAvailable("/proc/meminfo")
	if !ok {
		return 0, false
	}
	if left, ok := cgroupMemoryLeft("/proc/self/cgroup", "/sys/fs/cgroup"); ok {
		avail = min(avail, left)
	}
	return avail, true
}

// memInfoAvailable reads MemAvailable (in bytes) from a meminfo file.
func memInfoAvailable(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, false
			}
			return kb << 10, true
		}
	}
	return 0, false
}

// cgroupMemoryLeft returns the memory limit of the process's cgroup minus
// its usage; ok is false when there is no limit (or it cannot be read).
// cgroupFile is /proc/self/cgroup, mount the cgroup file system's root.
func cgroupMemoryLeft(cgroupFile, mount string) (int64, bool) {
	data, err := os.ReadFile(cgroupFile)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var limitFile, usageFile string
		switch {
		case parts[0] == "0" && parts[1] == "":
			dir := filepath.Join(mount, filepath.Clean("/"+parts[2]))
			limitFile, usageFile = filepath.Join(dir, "memory.max"), filepath.Join(dir, "memory.current")
		case strings.Contains(","+parts[1]+",", ",memory,"):
			dir := filepath.Join(mount, "memory", filepath.Clean("/"+parts[2]))
			limitFile, usageFile = filepath.Join(dir, "memory.limit_in_bytes"), filepath.Join(dir, "memory.usage_in_bytes")
		default:
			continue
		}
		limit, ok := readBytes(limitFile)
		if !ok {
			continue
		}
		usage, _ := readBytes(usageFile)
		return max(limit-usage, 0), true
	}
	return 0, false
}

// readBytes reads a number of bytes from a cgroup file ("max" and
// v1's "no limit" value are no number).
func readBytes(path string) (int64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0, false
	}
	return n, true
}
