package build

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestStaleBuildDirCleared: a build removes the temporary directory of a
// build that was killed (its lock free), mounts included, and leaves those
// of a live build (lock held) and of an older ship (no lock file).
func TestStaleBuildDirCleared(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	cache := t.TempDir()
	mkdir := func(p string) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stale := filepath.Join(cache, "ship-build-dead")
	mem := filepath.Join(stale, "rootfs-0-1", "mem")
	mkdir(mem)
	if err := os.WriteFile(filepath.Join(stale, tempLockName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mem, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mem, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(mem, "held"), []byte("memory"), 0o600); err != nil {
		t.Fatal(err)
	}

	live, release, err := MakeTempDir(cache, "ship-build-")
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	old := filepath.Join(cache, "ship-build-old")
	mkdir(filepath.Join(old, "rootfs-0-1"))

	res, logs, err := cachedBuildLogged(t, cache, "FROM busybox\nRUN echo ok > /ok\n", testbed.BusyboxImage(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := flatten(t, res.Image)["ok"]; got != "file ok 00644 0:0" {
		t.Errorf("/ok = %q", got)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the killed build's directory is still there (%v); log:\n%s", err, logs)
	}
	if m := mountsUnder(t, stale); len(m) > 0 {
		t.Errorf("the killed build's mounts are still there: %v", m)
	}
	if !strings.Contains(logs, "removed the temporary directory of a run that did not end") {
		t.Errorf("removal not logged; log:\n%s", logs)
	}
	for _, keep := range []string{live, old} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(keep), err)
		}
	}
	ents, _ := filepath.Glob(filepath.Join(cache, "ship-build-*"))
	want := []string{live, old}
	slices.Sort(ents)
	slices.Sort(want)
	if !slices.Equal(ents, want) {
		t.Errorf("build directories left: %v, want %v", ents, want)
	}
}
