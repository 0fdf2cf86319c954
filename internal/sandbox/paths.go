//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds symlink resolution inside the rootfs, as Linux does.
const maxSymlinks = 40

// resolve returns the in-root path (absolute, clean) that p names inside
// root, resolving symlinks as if root were "/": no result is outside root.
// The final component is followed only when followFinal is set. Missing
// components are kept as they are.
func resolve(root, p string, followFinal bool) (string, error) {
	rest := strings.Split(path.Clean("/"+p), "/")
	cur := "/"
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		if len(rest) == 0 && !followFinal {
			return next, nil
		}
		fi, err := os.Lstat(filepath.Join(root, next))
		if errors.Is(err, fs.ErrNotExist) {
			return path.Join(append([]string{next}, rest...)...), nil
		}
		if err != nil {
			return "", fmt.Errorf("resolving %s in rootfs: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		links++
		if links > maxSymlinks {
			return "", fmt.Errorf("resolving %s in rootfs: too many symlinks", p)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", fmt.Errorf("resolving %s in rootfs: %w", p, err)
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return cur, nil
}

// host returns the host path of an in-root path.
func host(root, p string) string { return filepath.Join(root, filepath.FromSlash(p)) }

// stub is something the sandbox created inside the rootfs.
type stub struct {
	path  string // in-root, resolved
	dir   bool
	force bool // remove even if not empty (content the sandbox copied in)
	// times of the parent directory before the stub was created.
	parentAtime, parentMtime time.Time
}

// tracker records what the sandbox changes in the rootfs so that undo can
// revert it, in reverse order.
type tracker struct {
	root  string
	undo  []func() error
	paths []string // SandboxPaths
}

func (t *tracker) addPath(p string) {
	t.paths = append(t.paths, strings.TrimPrefix(p, "/"))
}

// revert runs the undo steps in reverse order and returns the first error.
func (t *tracker) revert() error {
	var first error
	for i := len(t.undo) - 1; i >= 0; i-- {
		if err := t.undo[i](); err != nil && first == nil {
			first = err
		}
	}
	t.undo = nil
	return first
}

func parentTimes(root, p string) (atime, mtime time.Time, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(host(root, path.Dir(p)), &st); err != nil {
		return time.Time{}, time.Time{}, err
	}
	return time.Unix(st.Atim.Unix()), time.Unix(st.Mtim.Unix()), nil
}

// ensure makes the in-root path p exist (resolving symlinks, following the
// final one), creating missing directories with 0755 and, unless dir, a
// final empty regular file with mode 0644. It returns the resolved path.
// Everything created is removed by revert.
func (t *tracker) ensure(p string, dir bool) (string, error) {
	r, err := resolve(t.root, p, true)
	if err != nil {
		return "", err
	}
	parts := strings.Split(strings.TrimPrefix(r, "/"), "/")
	cur := "/"
	for i, c := range parts {
		if c == "" {
			continue
		}
		next := path.Join(cur, c)
		last := i == len(parts)-1
		fi, err := os.Lstat(host(t.root, next))
		switch {
		case err == nil:
			if (!last || dir) && !fi.IsDir() {
				return "", fmt.Errorf("creating %s in rootfs: %s is not a directory", p, next)
			}
			if last && !dir && !fi.Mode().IsRegular() {
				return "", fmt.Errorf("creating %s in rootfs: %s is not a regular file", p, next)
			}
		case errors.Is(err, fs.ErrNotExist):
			if err := t.create(next, !last || dir); err != nil {
				return "", fmt.Errorf("creating %s in rootfs: %w", p, err)
			}
		default:
			return "", fmt.Errorf("creating %s in rootfs: %w", p, err)
		}
		cur = next
	}
	return r, nil
}

// ensureSystemDir is ensure for /proc, /dev and /sys: they must be
// directories at their own path, never symlinks to another place.
func (t *tracker) ensureSystemDir(p string) (string, error) {
	r, err := t.ensure(p, true)
	if err != nil {
		return "", err
	}
	if r != p {
		return "", fmt.Errorf("preparing %s in rootfs: it is a symlink (to %s)", p, r)
	}
	return r, nil
}

// create makes one stub (whose parent exists and is resolved) and registers
// its removal.
func (t *tracker) create(p string, dir bool) error {
	at, mt, err := parentTimes(t.root, p)
	if err != nil {
		return err
	}
	if dir {
		err = os.Mkdir(host(t.root, p), 0o755)
	} else {
		var f *os.File
		f, err = os.OpenFile(host(t.root, p), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return err
	}
	s := stub{path: p, dir: dir, parentAtime: at, parentMtime: mt}
	t.undo = append(t.undo, func() error { return t.removeStub(&s) })
	return nil
}

// unchanged reports whether the in-root path p still resolves to itself,
// i.e. the process did not replace a parent by a symlink.
func (t *tracker) unchanged(p string) bool {
	r, err := resolve(t.root, p, false)
	return err == nil && r == p
}

func (t *tracker) removeStub(s *stub) error {
	if !t.unchanged(s.path) {
		return nil
	}
	h := host(t.root, s.path)
	fi, err := os.Lstat(h)
	if errors.Is(err, fs.ErrNotExist) {
		return t.restoreParent(s)
	}
	if err != nil {
		return fmt.Errorf("removing %s from rootfs: %w", s.path, err)
	}
	switch {
	case s.force:
		err = os.RemoveAll(h)
	case s.dir && fi.IsDir():
		err = unix.Rmdir(h)
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			return nil // the process wrote there: its change, keep it
		}
	case !s.dir && fi.Mode().IsRegular() && fi.Size() == 0:
		err = os.Remove(h)
	default:
		return nil // replaced by the process: keep
	}
	if err != nil {
		return fmt.Errorf("removing %s from rootfs: %w", s.path, err)
	}
	return t.restoreParent(s)
}

func (t *tracker) restoreParent(s *stub) error {
	parent := path.Dir(s.path)
	if !t.unchanged(parent) {
		return nil
	}
	ts := []unix.Timespec{unix.NsecToTimespec(s.parentAtime.UnixNano()), unix.NsecToTimespec(s.parentMtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, host(t.root, parent), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("restoring times of %s in rootfs: %w", parent, err)
	}
	return nil
}

// putFile makes the in-root path p (following symlinks inside the rootfs) a
// regular file with the content and mode of the host file src, as a copy:
// an existing regular file is backed up (content, mode, owner, times) and
// restored by revert; a missing one is created and removed by revert.
func (t *tracker) putFile(p, src string) error {
	t.addPath(p)
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	sfi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	r, err := resolve(t.root, p, true)
	if err != nil {
		return err
	}
	if r != path.Clean(p) {
		t.addPath(r)
	}
	h := host(t.root, r)
	var st unix.Stat_t
	err = unix.Lstat(h, &st)
	switch {
	case errors.Is(err, unix.ENOENT):
		if _, err := t.ensure(path.Dir(r), true); err != nil {
			return err
		}
		at, mt, err := parentTimes(t.root, r)
		if err != nil {
			return err
		}
		if err := os.WriteFile(h, data, sfi.Mode().Perm()); err != nil {
			return fmt.Errorf("copying %s into rootfs: %w", p, err)
		}
		if err := copyOwnerAndMode(h, sfi); err != nil {
			return fmt.Errorf("copying %s into rootfs: %w", p, err)
		}
		s := stub{path: r, force: true, parentAtime: at, parentMtime: mt}
		t.undo = append(t.undo, func() error { return t.removeStub(&s) })
		return nil
	case err != nil:
		return fmt.Errorf("copying %s into rootfs: %w", p, err)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("copying %s into rootfs: %s exists and is not a regular file", p, r)
	}
	old, err := os.ReadFile(h)
	if err != nil {
		return fmt.Errorf("backing up %s: %w", r, err)
	}
	t.undo = append(t.undo, func() error { return t.restoreFile(r, old, st) })
	if err := os.WriteFile(h, data, 0); err != nil {
		return fmt.Errorf("copying %s into rootfs: %w", p, err)
	}
	if err := copyOwnerAndMode(h, sfi); err != nil {
		return fmt.Errorf("copying %s into rootfs: %w", p, err)
	}
	return nil
}

// copyOwnerAndMode gives the copy at h the owner and permissions of the
// source file (a secret mounted with uid=, gid=, mode=), owner first since
// chown clears setuid bits.
func copyOwnerAndMode(h string, src fs.FileInfo) error {
	if st, ok := src.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(h, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	return os.Chmod(h, src.Mode().Perm())
}

// restoreFile puts back a file that putFile overwrote.
func (t *tracker) restoreFile(p string, data []byte, st unix.Stat_t) error {
	if !t.unchanged(p) {
		return nil
	}
	h := host(t.root, p)
	fi, err := os.Lstat(h)
	if err == nil && !fi.Mode().IsRegular() {
		if err := os.RemoveAll(h); err != nil {
			return fmt.Errorf("restoring %s: %w", p, err)
		}
	}
	f, err := os.OpenFile(h, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("restoring %s: %w", p, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Lchown(h, int(st.Uid), int(st.Gid))
	}
	if err == nil {
		err = os.Chmod(h, fs.FileMode(st.Mode&0o7777)&fs.ModePerm|modeBits(st.Mode))
	}
	if err == nil {
		err = unix.UtimesNanoAt(unix.AT_FDCWD, h, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return fmt.Errorf("restoring %s: %w", p, err)
	}
	return nil
}

// modeBits converts setuid/setgid/sticky from a raw mode to fs.FileMode.
func modeBits(m uint32) fs.FileMode {
	var r fs.FileMode
	if m&unix.S_ISUID != 0 {
		r |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		r |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		r |= fs.ModeSticky
	}
	return r
}

// copyTree copies the directory tree src into the existing directory dst:
// directories, regular files and symlinks with modes, owners and times;
// other file types are skipped. Symlinks are never followed.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t) //nolint:errcheck // Linux always has it
		switch {
		case fi.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := copyFile(p, target); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		default:
			return nil
		}
		if st != nil {
			if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if err := os.Chmod(target, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
				return err
			}
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// emptyDir removes everything inside the directory dir.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
