//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Detect reports whether this process can isolate a RUN with namespaces:
// unshare a mount namespace and mount in it. The probe runs on a dedicated
// OS thread that dies afterwards, so it leaves nothing behind.
func Detect() Mode {
	mode := ModeChroot
	onDisposableThread(func(tainted *bool) {
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return
		}
		*tainted = true // the thread's namespace dies with it
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return
		}
		dir := os.TempDir()
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4k"); err != nil {
			return
		}
		_ = unix.Unmount(dir, unix.MNT_DETACH) //nolint:errcheck // private namespace, dies with the thread
		mode = ModeNamespaces
	})
	return mode
}

// devices are the character devices of the minimal /dev.
var devices = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// mount mounts and records the host target for unmountAll.
func (r *runner) mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mounting %s on %s: %w", fstype+source, target, err)
	}
	r.mounts = append(r.mounts, target)
	return nil
}

// bind bind-mounts source on target, read-only if ro.
func (r *runner) bind(source, target string, ro bool) error {
	if err := r.mount(source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if ro {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", target, err)
		}
	}
	return nil
}

// unmountAll detaches the mounts in reverse order, so the stubs below them
// can be removed.
func (r *runner) unmountAll() error {
	var first error
	for i := len(r.mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(r.mounts[i], unix.MNT_DETACH); err != nil && first == nil {
			first = fmt.Errorf("unmounting %s: %w", r.mounts[i], err)
		}
	}
	r.mounts = nil
	return first
}

// setupNamespaces unshares the thread's mount namespace and mounts /dev,
// /sys, resolv.conf, hosts and the spec's mounts (/proc comes in atExec).
func (r *runner) setupNamespaces() error {
	t := r.tracker
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unsharing mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("making / a slave mount: %w", err)
	}
	if _, err := t.ensureSystemDir("/proc"); err != nil {
		return err
	}
	if err := r.setupDev(); err != nil {
		return err
	}
	sys, err := t.ensureSystemDir("/sys")
	if err != nil {
		return err
	}
	const ro = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := r.mount("sysfs", host(t.root, sys), "sysfs", ro, ""); err != nil {
		if err := r.bind("/sys", host(t.root, sys), true); err != nil {
			return err
		}
	}
	for _, f := range []struct{ target, src string }{{"/etc/resolv.conf", r.opts.resolvConf}, {"/etc/hosts", r.opts.hosts}} {
		if f.src == "" {
			continue
		}
		if _, err := os.Stat(f.src); err != nil {
			r.log.Warn("sandbox: host file missing, not provided to RUN", "file", f.src, "err", err)
			continue
		}
		p, err := t.ensure(f.target, false)
		if err != nil {
			return err
		}
		t.addPath(f.target)
		if p != f.target {
			t.addPath(p)
		}
		if err := r.bind(f.src, host(t.root, p), true); err != nil {
			return err
		}
	}
	for _, m := range r.spec.Mounts {
		if m.Socket {
			if err := t.putSocket(m); err != nil {
				return err
			}
			continue
		}
		p, err := t.ensure(m.Target, !m.File)
		if err != nil {
			return err
		}
		t.addPath(m.Target)
		if p != path.Clean(m.Target) {
			t.addPath(p)
		}
		if err := r.bind(m.Source, host(t.root, p), m.ReadOnly); err != nil {
			return err
		}
	}
	return nil
}

// setupDev mounts a tmpfs on /dev with the minimal device nodes, a new
// devpts instance and shm.
func (r *runner) setupDev() error {
	p, err := r.tracker.ensureSystemDir("/dev")
	if err != nil {
		return err
	}
	dev := host(r.tracker.root, p)
	if err := r.mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	for _, d := range devices {
		node := filepath.Join(dev, d.name)
		if err := unix.Mknod(node, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err == nil {
			if err := os.Chmod(node, 0o666); err != nil {
				return fmt.Errorf("creating /dev/%s: %w", d.name, err)
			}
			continue
		}
		// No mknod: bind the host's node.
		if err := os.WriteFile(node, nil, 0o666); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", d.name, err)
		}
		if err := r.bind("/dev/"+d.name, node, false); err != nil {
			return err
		}
	}
	for _, l := range [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}} {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", l[1], err)
		}
	}
	if err := os.Mkdir(filepath.Join(dev, "pts"), 0o755); err != nil {
		return fmt.Errorf("creating /dev/pts: %w", err)
	}
	if err := r.mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dev, "shm"), 0o1777); err != nil {
		return fmt.Errorf("creating /dev/shm: %w", err)
	}
	return r.mount("shm", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k")
}

// atExec runs while the process is stopped right after its execve (it was
// started with PTRACE_TRACEME): it mounts /proc for the process's PID
// namespace, brings up loopback for Network "none", and lets it go.
func (r *runner) atExec(pid int) error {
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
		return fmt.Errorf("waiting for process start: %w", err)
	}
	if !ws.Stopped() {
		return fmt.Errorf("process did not stop at exec: status %v", ws)
	}
	procDir := host(r.tracker.root, "/proc") // checked by ensureSystemDir
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := r.mount("proc", procDir, "proc", flags, "pidns=/proc/"+strconv.Itoa(pid)+"/ns/pid"); err != nil {
		// Kernels before 6.15 have no pidns option: a proc of the host's
		// PID namespace still gives /proc/self and friends.
		r.log.Warn("sandbox: /proc shows the host's processes (kernel without proc pidns= option)", "err", err)
		if err := r.mount("proc", procDir, "proc", flags, ""); err != nil {
			return err
		}
	}
	if r.spec.Network == "none" {
		if err := loopbackUp(pid); err != nil {
			r.log.Warn("sandbox: bringing up loopback", "err", err)
		}
	}
	if err := unix.PtraceDetach(pid); err != nil {
		return fmt.Errorf("releasing process: %w", err)
	}
	return nil
}

// loopbackUp sets "lo" up in pid's network namespace. It switches the
// calling (locked, doomed) thread into that namespace.
func loopbackUp(pid int) error {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return err
	}
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return errors.Join(errors.New("setting lo up"), err)
	}
	return nil
}
