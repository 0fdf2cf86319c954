package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// putSocket creates a unix socket at the in-root path m.Target (its
// missing parents as stubs) that forwards every connection to the host
// socket m.Source, owned by m.UID:m.GID with m.Mode (0600 when zero);
// revert stops it and removes it.
func (t *tracker) putSocket(m Mount) error {
	dir, err := t.ensure(path.Dir(path.Clean(m.Target)), true)
	if err != nil {
		return err
	}
	p := path.Join(dir, path.Base(m.Target))
	h := host(t.root, p)
	if _, err := os.Lstat(h); err == nil {
		return fmt.Errorf("mounting a socket at %s: the path exists", m.Target)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mounting a socket at %s: %w", m.Target, err)
	}
	at, mt, err := parentTimes(t.root, p)
	if err != nil {
		return err
	}
	// Bound through the parent directory's descriptor: a socket path is
	// limited to 107 bytes, and the rootfs may be deep.
	pd, err := os.OpenFile(host(t.root, dir), os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("mounting a socket at %s: %w", m.Target, err)
	}
	defer pd.Close()
	name := path.Base(p)
	l, err := net.Listen("unix", "/proc/self/fd/"+strconv.Itoa(int(pd.Fd()))+"/"+name)
	if err != nil {
		return fmt.Errorf("mounting a socket at %s: %w", m.Target, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	mode := m.Mode
	if mode == 0 {
		mode = 0o600
	}
	err = unix.Fchmodat(int(pd.Fd()), name, uint32(mode.Perm()), 0)
	if err == nil {
		err = unix.Fchownat(int(pd.Fd()), name, m.UID, m.GID, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		l.Close()
		_ = unix.Unlinkat(int(pd.Fd()), name, 0)
		return fmt.Errorf("mounting a socket at %s: %w", m.Target, err)
	}
	t.addPath(p)
	var wg sync.WaitGroup
	wg.Go(func() { forward(l, m.Source, &wg) })
	s := stub{path: p, force: true, parentAtime: at, parentMtime: mt}
	t.undo = append(t.undo, func() error {
		l.Close()
		wg.Wait()
		return t.removeStub(&s)
	})
	return nil
}

// forward accepts connections on l until it is closed and copies each to
// and from a new connection to the socket at target.
func forward(l net.Listener, target string, wg *sync.WaitGroup) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer c.Close()
			up, err := net.Dial("unix", target)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{})
			go func() {
				_, _ = io.Copy(up, c)
				_ = up.(*net.UnixConn).CloseWrite()
				close(done)
			}()
			_, _ = io.Copy(c, up)
			_ = c.(*net.UnixConn).CloseWrite()
			<-done
		})
	}
}
