package build

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/moby/sys/mount"
	"golang.org/x/sys/unix"
)

// A build's temporary directory (ship-build-*; ship's run makes one of
// its own around it) holds its overlay and tmpfs mounts and its working
// files, deleted when the build ends. A ship killed with SIGKILL (a CI job
// cancelled past its grace period) cannot delete them: its mounts stay on
// the host, the tmpfs ones (the base and RUN's changes in memory) holding
// their memory. So such a directory is made by MakeTempDir, which holds an
// exclusive flock on tempLockName in it for as long as the directory
// exists, and ClearStaleTempDirs, called before making a new one, deletes
// those beside it whose lock is free: their mounts detached (deepest
// first, mount.RecursiveUnmount), then the directory. A directory without
// the lock file (made by an older ship) is left alone.
const (
	buildDirPattern = "ship-build-"
	tempLockName    = ".ship.lock"
)

// MakeTempDir creates a new directory in parent (os.TempDir() when empty)
// named pattern followed by a random string, locked as a live one for
// ClearStaleTempDirs; release deletes it and drops the lock. The lock file
// appears under its name already locked (made under another name, then
// renamed), so that no other run can take it for a dead run's.
func MakeTempDir(parent, pattern string) (dir string, release func(), err error) {
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err = os.MkdirTemp(parent, pattern)
	if err != nil {
		return "", nil, fmt.Errorf("creating temporary directory: %w", err)
	}
	fail := func(err error) (string, func(), error) {
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("locking temporary directory: %w", err)
	}
	tmp := filepath.Join(dir, tempLockName+".new")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fail(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, tempLockName)); err != nil {
		f.Close()
		return fail(err)
	}
	return dir, func() {
		_ = os.RemoveAll(dir)
		f.Close()
	}, nil
}

// ClearStaleTempDirs deletes the directories made by MakeTempDir in parent
// (os.TempDir() when empty) with pattern whose run is gone (their lock is
// free), after detaching the mounts under them. Failures are only logged:
// they concern another run's leftovers.
func ClearStaleTempDirs(parent, pattern string, log *slog.Logger) {
	if parent == "" {
		parent = os.TempDir()
	}
	dirs, err := filepath.Glob(filepath.Join(parent, pattern+"*"))
	if err != nil {
		return
	}
	for _, dir := range dirs {
		f, err := os.OpenFile(filepath.Join(dir, tempLockName), os.O_RDWR, 0)
		if err != nil {
			continue // no lock file: not ours to judge
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close() // a live run
			continue
		}
		err = mount.RecursiveUnmount(dir)
		if err == nil {
			err = os.RemoveAll(dir)
		}
		f.Close()
		if err != nil {
			log.Warn("removing the temporary directory of a run that did not end", "dir", dir, "err", err)
			continue
		}
		log.Info("removed the temporary directory of a run that did not end (killed?)", "dir", dir)
	}
}
