//go:build linux

package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// setupChroot prepares the rootfs for a plain chroot: resolv.conf and hosts
// copied in, missing /dev nodes created, mounts copied in.
func (r *runner) setupChroot() error {
	t := r.tracker
	if r.spec.Network == "none" {
		r.log.Warn("sandbox: no CAP_SYS_ADMIN: RUN --network=none uses the host network")
	}
	for _, f := range []struct{ target, src string }{{"/etc/resolv.conf", r.opts.resolvConf}, {"/etc/hosts", r.opts.hosts}} {
		if f.src == "" {
			continue
		}
		if _, err := os.Stat(f.src); err != nil {
			r.log.Warn("sandbox: host file missing, not provided to RUN", "file", f.src, "err", err)
			continue
		}
		if err := t.putFile(f.target, f.src); err != nil {
			return err
		}
	}
	if err := r.chrootDev(); err != nil {
		return err
	}
	for _, m := range r.spec.Mounts {
		if m.Socket {
			if err := t.putSocket(m); err != nil {
				return err
			}
			continue
		}
		if m.File {
			if err := t.putFile(m.Target, m.Source); err != nil {
				return err
			}
			continue
		}
		t.addPath(m.Target)
		if err := r.chrootDirMount(m); err != nil {
			return err
		}
	}
	return nil
}

// chrootDev creates the missing nodes of the minimal /dev with mknod.
func (r *runner) chrootDev() error {
	t := r.tracker
	p, err := t.ensureSystemDir("/dev")
	if err != nil {
		return err
	}
	warned := false
	for _, d := range devices {
		node := path.Join(p, d.name)
		if _, err := os.Lstat(host(t.root, node)); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		at, mt, err := parentTimes(t.root, node)
		if err != nil {
			return err
		}
		if err := unix.Mknod(host(t.root, node), unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			if !warned {
				r.log.Warn("sandbox: cannot create device nodes in /dev", "err", err)
				warned = true
			}
			continue
		}
		s := stub{path: node, force: true, parentAtime: at, parentMtime: mt}
		t.undo = append(t.undo, func() error { return t.removeStub(&s) })
		if err := os.Chmod(host(t.root, node), 0o666); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", d.name, err)
		}
	}
	return nil
}

// chrootDirMount copies the directory m.Source to m.Target; afterwards the
// content is copied back to m.Source unless ReadOnly, and the target is
// removed (an existing directory there is put aside and back).
func (r *runner) chrootDirMount(m Mount) error {
	t := r.tracker
	p, err := resolve(t.root, m.Target, true)
	if err != nil {
		return err
	}
	h := host(t.root, p)
	fi, err := os.Lstat(h)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, err := t.ensure(p, true); err != nil {
			return err
		}
		t.undo = append(t.undo, func() error { return r.unmountDirCopy(m, p, func() error { return emptyDir(h) }) })
	case err != nil:
		return fmt.Errorf("mounting %s: %w", m.Target, err)
	case !fi.IsDir():
		return fmt.Errorf("mounting %s: target exists and is not a directory", m.Target)
	default:
		at, mt, err := parentTimes(t.root, p)
		if err != nil {
			return err
		}
		var b [6]byte
		_, _ = rand.Read(b[:]) //nolint:errcheck // never fails
		aside := filepath.Join(filepath.Dir(h), ".ship-sandbox-"+hex.EncodeToString(b[:]))
		if err := os.Rename(h, aside); err != nil {
			return fmt.Errorf("mounting %s: putting the existing directory aside: %w", m.Target, err)
		}
		st := fi.Sys().(*syscall.Stat_t) //nolint:forcetypeassert // Linux
		t.undo = append(t.undo, func() error {
			return r.unmountDirCopy(m, p, func() error {
				if err := os.RemoveAll(h); err != nil {
					return err
				}
				if err := os.Rename(aside, h); err != nil {
					return err
				}
				ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
				return unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Dir(h), ts, unix.AT_SYMLINK_NOFOLLOW)
			})
		})
		if err := os.Mkdir(h, fi.Mode().Perm()); err != nil {
			return fmt.Errorf("mounting %s: %w", m.Target, err)
		}
		if err := os.Lchown(h, int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("mounting %s: %w", m.Target, err)
		}
	}
	if err := copyTree(m.Source, h); err != nil {
		return fmt.Errorf("mounting %s: copying %s in: %w", m.Target, m.Source, err)
	}
	return nil
}

// unmountDirCopy copies a directory mount back to its source (unless
// ReadOnly) and then runs remove.
func (r *runner) unmountDirCopy(m Mount, p string, remove func() error) error {
	t := r.tracker
	h := host(t.root, p)
	fi, err := os.Lstat(h)
	if !t.unchanged(p) || err != nil || !fi.IsDir() {
		return fmt.Errorf("unmounting %s: the run replaced the mount target", m.Target)
	}
	if !m.ReadOnly {
		if err := emptyDir(m.Source); err != nil {
			return fmt.Errorf("unmounting %s: %w", m.Target, err)
		}
		if err := copyTree(h, m.Source); err != nil {
			return fmt.Errorf("unmounting %s: copying back to %s: %w", m.Target, m.Source, err)
		}
	}
	if err := remove(); err != nil {
		return fmt.Errorf("unmounting %s: %w", m.Target, err)
	}
	return nil
}
