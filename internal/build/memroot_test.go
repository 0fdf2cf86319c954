package build

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/layer"
	"github.com/intesys/ship-action/internal/testbed"
)

// TestMemoryRoot: with overlay mounts and no base cache, the base is
// extracted into a tmpfs, which gives the same image as an extraction on
// the disk and is unmounted when the build ends.
func TestMemoryRoot(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	df := "FROM busybox\nRUN echo ok > /ok && cp /bin/busybox /bb && rm /bin/ls && mkdir -p /etc/x && echo y > /etc/x/y\n"
	img := testbed.BusyboxImage(t)
	inMemory, logs := flatBuild(t, df, img)
	if !strings.Contains(logs, "base root file system in memory") {
		t.Fatalf("base not extracted in memory; log:\n%s", logs)
	}
	onDisk, logs := flatBuild(t, df, img, withMemoryRoot(-1))
	if strings.Contains(logs, "base root file system in memory") {
		t.Fatalf("base extracted in memory with withMemoryRoot(-1); log:\n%s", logs)
	}
	if !maps.Equal(inMemory, onDisk) {
		t.Errorf("images differ:\nin memory: %v\non disk:   %v", inMemory, onDisk)
	}
	if _, ok := inMemory["bin/ls"]; ok {
		t.Error("/bin/ls deleted by RUN is in the image")
	}
	if got := inMemory["ok"]; got != "file ok 00644 0:0" {
		t.Errorf("/ok = %q", got)
	}
}

// TestMemoryRootTooSmall: a base that does not fit in the tmpfs (it
// compresses far better than assumed) is extracted on the disk instead.
func TestMemoryRootTooSmall(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	busybox := testbed.BusyboxImage(t)
	layers, err := busybox.Layers()
	if err != nil {
		t.Fatal(err)
	}
	// Not zeros: the extraction leaves holes for those.
	filler := bytes.Repeat([]byte("ship-action "), 16<<20/12)
	big, err := layer.New(context.Background(), []layer.Entry{{
		Header: &tar.Header{Typeflag: tar.TypeReg, Name: "filler", Mode: 0o644, Size: int64(len(filler))},
		Open:   func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(filler)), nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	img := testbed.LinuxImage(t, append(append([]v1.Layer(nil), layers...), big)...)
	var compressed int64
	for _, l := range append(layers, big) {
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		compressed += n
	}
	// Large enough for the estimate, too small for the 16 MB file.
	limit := compressed*memRootRatio + 1<<20
	if limit >= 16<<20 {
		t.Fatalf("busybox base too large for this test: limit %d", limit)
	}
	cache := t.TempDir()
	res, logs, err := cachedBuildLogged(t, cache, "FROM busybox\nRUN echo ok > /ok\n", img, WithoutRootFSCache(), withMemoryRoot(limit))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "larger than the memory for it") {
		t.Errorf("no fallback to the disk logged; log:\n%s", logs)
	}
	files := flatten(t, res.Image)
	if got := files["ok"]; got != "file ok 00644 0:0" {
		t.Errorf("/ok = %q", got)
	}
	if m := mountsUnder(t, cache); len(m) > 0 {
		t.Errorf("mounts left after the build: %v", m)
	}

	// With the base cache, a first use that the memory cannot take makes
	// the cache entry, as a second use does (see baseFirstUse).
	cache = t.TempDir()
	res, logs, err = cachedBuildLogged(t, cache, "FROM busybox\nRUN echo ok > /ok\n", img, withMemoryRoot(limit))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "larger than the memory for it") || !strings.Contains(logs, "cached=false") ||
		strings.Contains(logs, "used for the first time") {
		t.Errorf("with a cache: want the fallback from memory to a new cache entry; log:\n%s", logs)
	}
	if got := flatten(t, res.Image)["ok"]; got != "file ok 00644 0:0" {
		t.Errorf("with a cache: /ok = %q", got)
	}
	if m := mountsUnder(t, cache); len(m) > 0 {
		t.Errorf("with a cache: mounts left after the build: %v", m)
	}
}

func TestAvailableMemory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	meminfo := write("meminfo", "MemTotal:       24000000 kB\nMemFree:        1000 kB\nMemAvailable:   2000000 kB\n")
	if n, ok := memInfoAvailable(meminfo); !ok || n != 2000000<<10 {
		t.Errorf("memInfoAvailable = %d, %v", n, ok)
	}
	if _, ok := memInfoAvailable(write("nomeminfo", "MemTotal: 1 kB\n")); ok {
		t.Error("memInfoAvailable without MemAvailable: ok")
	}

	cg := filepath.Join(dir, "cg")
	write("cg/job/memory.max", "1073741824\n")
	write("cg/job/memory.current", "73741824\n")
	write("cg/free/memory.max", "max\n")
	write("cg/memory/docker/x/memory.limit_in_bytes", "536870912\n")
	write("cg/memory/docker/x/memory.usage_in_bytes", "36870912\n")
	write("cg/memory/nolimit/memory.limit_in_bytes", "9223372036854771712\n")
	write("cg/over/memory.max", "100\n")
	write("cg/over/memory.current", "200\n")
	for _, tt := range []struct {
		name, cgroup string
		want         int64
		ok           bool
	}{
		{"cgroup v2 limit", "0::/job\n", 1000000000, true},
		{"cgroup v2 without a limit", "0::/free\n", 0, false},
		{"cgroup v1 limit", "12:cpu,cpuacct:/docker/x\n4:memory:/docker/x\n", 500000000, true},
		{"cgroup v1 without a limit", "4:memory:/nolimit\n", 0, false},
		{"cgroup over its limit", "0::/over\n", 0, true},
	} {
		n, ok := cgroupMemoryLeft(write(tt.name, tt.cgroup), cg)
		if ok != tt.ok || (ok && n != tt.want) {
			t.Errorf("%s: %d, %v; want %d, %v", tt.name, n, ok, tt.want, tt.ok)
		}
	}
}

// flatBuild builds df on img without a base cache, checks that no mount and
// no base cache entry is left, and returns the image's flattened file system and the build log.
func flatBuild(t *testing.T, df string, img v1.Image, opts ...Option) (map[string]string, string) {
	t.Helper()
	cache := t.TempDir()
	res, logs, err := cachedBuildLogged(t, cache, df, img, append([]Option{WithoutRootFSCache()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, cache); len(m) > 0 {
		t.Errorf("mounts left after the build: %v", m)
	}
	if _, err := os.Stat(filepath.Join(cache, rootfsCacheDir)); err == nil {
		t.Error("root file system cache made without a base cache")
	}
	return flatten(t, res.Image), logs
}
