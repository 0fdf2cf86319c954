//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// defaultPath is the PATH BuildKit uses when the environment has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// drainTimeout bounds the wait for the output pipes to close once every
// process of the run has been killed.
const drainTimeout = 5 * time.Second

type runner struct {
	ctx  context.Context //nolint:containedctx // lives for one Run call
	spec Spec
	opts options
	log  *slog.Logger

	tracker *tracker
	mounts  []string // host paths mounted (ModeNamespaces), in order
}

// run does the work on a locked OS thread. In ModeNamespaces the thread is
// never unlocked after it unshared its mount namespace, so it ends with the
// goroutine and takes every mount with it.
func (r *runner) run() (Result, error) {
	type outcome struct {
		res Result
		err error
	}
	var o outcome
	onDisposableThread(func(tainted *bool) {
		o.res, o.err = r.locked(tainted)
	})
	return o.res, o.err
}

func (r *runner) locked(tainted *bool) (res Result, err error) {
	t := &tracker{root: r.spec.RootFS}
	r.tracker = t
	defer func() {
		res.paths = t.paths
		if uerr := r.unmountAll(); uerr != nil && err == nil {
			err = uerr
		}
		if rerr := t.revert(); rerr != nil {
			if err == nil {
				err = fmt.Errorf("cleaning up sandbox: %w", rerr)
			} else {
				r.log.Warn("sandbox: cleaning up", "err", rerr)
			}
		}
	}()
	for _, p := range []string{"proc", "dev", "sys"} {
		t.addPath(p)
	}
	if err := r.mkdirWorkdir(); err != nil {
		return res, err
	}
	argv0, err := lookPath(r.spec.RootFS, r.spec.Args[0], r.spec.Env)
	if err != nil {
		return res, err
	}
	switch r.opts.mode {
	case ModeNamespaces:
		*tainted = true
		if err := r.setupNamespaces(); err != nil {
			return res, err
		}
	default:
		if err := r.setupChroot(); err != nil {
			return res, err
		}
	}
	r.suppressSync(tainted)
	return res, r.exec(argv0)
}

// suppressSync makes the sync syscalls of the process no-ops where that
// needs no change a RUN could notice: always with CAP_SYS_ADMIN
// (ModeNamespaces), in ModeChroot only for root, because the
// no_new_privs it needs there would stop setuid programs (sudo, su) of other
// users. The thread keeps the filter, so it is never reused.
func (r *runner) suppressSync(tainted *bool) {
	noNewPrivs := r.opts.mode != ModeNamespaces
	if noNewPrivs && r.spec.UID != 0 {
		r.log.Debug("sandbox: sync calls stay real for a RUN as a user other than root without CAP_SYS_ADMIN")
		return
	}
	*tainted = true
	if err := suppressSync(noNewPrivs); err != nil {
		r.log.Debug("sandbox: sync calls stay real", "err", err)
	}
}

// mkdirWorkdir creates the working directory (0755) if missing; it belongs
// to the run, not to the sandbox, so it stays.
func (r *runner) mkdirWorkdir() error {
	keep := &tracker{root: r.spec.RootFS}
	if _, err := keep.ensure(r.spec.Dir, true); err != nil {
		return fmt.Errorf("creating working directory: %w", err)
	}
	return nil
}

// lookPath finds argv0 inside root the way execvp would in the chroot and
// returns the path to exec (inside the chroot).
func lookPath(root, argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		return argv0, nil
	}
	p := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			p = v
		}
	}
	for _, dir := range filepath.SplitList(p) {
		if dir == "" || !path.IsAbs(dir) {
			continue
		}
		cand := path.Join(dir, argv0)
		res, err := resolve(root, cand, true)
		if err != nil {
			continue
		}
		fi, err := os.Stat(host(root, res))
		if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return cand, nil
		}
	}
	return "", fmt.Errorf("running %q: executable file not found in $PATH", argv0)
}

// exec starts the process, waits for it, kills what it left behind and
// drains its output.
func (r *runner) exec(argv0 string) error {
	spec := r.spec
	cmd := exec.Command(argv0) // contains a slash or is resolved below: no host lookup
	cmd.Path = argv0
	cmd.Args = spec.Args
	cmd.Env = append([]string{}, spec.Env...)
	cmd.Dir = spec.Dir
	cmd.Stdin = spec.Stdin
	cmd.WaitDelay = drainTimeout

	var copiers sync.WaitGroup
	var readers []*os.File
	pipe := func(w io.Writer) (*os.File, error) {
		if w == nil {
			w = io.Discard
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		readers = append(readers, pr)
		copiers.Go(func() {
			_, _ = io.Copy(w, pr) //nolint:errcheck // a failing writer only loses output
		})
		return pw, nil
	}
	stdout, err := pipe(spec.Stdout)
	if err != nil {
		return fmt.Errorf("creating output pipe: %w", err)
	}
	stderr, err := pipe(spec.Stderr)
	if err != nil {
		stdout.Close()
		return fmt.Errorf("creating output pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	drain := func() {
		done := make(chan struct{})
		go func() { copiers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(drainTimeout):
			r.log.Warn("sandbox: output still open after the run; closing it")
			for _, pr := range readers {
				pr.Close()
			}
			<-done
		}
		for _, pr := range readers {
			pr.Close()
		}
	}

	groups := make([]uint32, len(spec.Groups))
	for i, g := range spec.Groups {
		groups[i] = uint32(g)
	}
	attr := &syscall.SysProcAttr{
		Chroot:     spec.RootFS,
		Credential: &syscall.Credential{Uid: uint32(spec.UID), Gid: uint32(spec.GID), Groups: groups},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	if r.opts.mode == ModeNamespaces {
		attr.Cloneflags = syscall.CLONE_NEWPID
		if spec.Network == "none" {
			attr.Cloneflags |= syscall.CLONE_NEWNET
		}
		attr.Ptrace = true // stop at exec so /proc can be mounted for the new PID namespace
	}
	cmd.SysProcAttr = attr

	if err := r.ctx.Err(); err != nil {
		stdout.Close()
		stderr.Close()
		drain()
		return fmt.Errorf("running %s: %w", argv0, err)
	}
	err = cmd.Start()
	stdout.Close()
	stderr.Close()
	if err != nil {
		drain()
		return fmt.Errorf("starting %s: %w", argv0, err)
	}
	pid := cmd.Process.Pid
	if r.opts.mode == ModeNamespaces {
		if err := r.atExec(pid); err != nil {
			_ = unix.Kill(pid, unix.SIGKILL) //nolint:errcheck // best effort
			_ = cmd.Wait()                   //nolint:errcheck // the setup error matters
			r.killAll(pid)
			drain()
			return err
		}
	}

	done := make(chan struct{})
	var killed bool // read after watcher.Wait
	var watcher sync.WaitGroup
	watcher.Go(func() {
		select {
		case <-r.ctx.Done():
			killed = true
			r.killAll(pid)
		case <-done:
		}
	})
	werr := cmd.Wait()
	close(done)
	// A kill on cancellation must end before Run returns: it kills every
	// process chrooted into the rootfs, and the next RUN may start there.
	watcher.Wait()
	r.killAll(pid)
	drain()

	if killed {
		return fmt.Errorf("running %s: %w", argv0, context.Cause(r.ctx))
	}
	state := cmd.ProcessState
	if state == nil {
		return fmt.Errorf("running %s: %w", argv0, werr)
	}
	ws, ok := state.Sys().(syscall.WaitStatus)
	switch {
	case ok && ws.Signaled():
		return &ExitError{Code: 128 + int(ws.Signal())}
	case ok && ws.Exited() && ws.ExitStatus() != 0:
		return &ExitError{Code: ws.ExitStatus()}
	case !state.Success():
		return fmt.Errorf("running %s: %s", argv0, state)
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) && !errors.Is(werr, exec.ErrWaitDelay) {
		return fmt.Errorf("running %s: %w", argv0, werr)
	}
	return nil
}

// killAll kills the process group of pid and every process chrooted into
// the rootfs, until none is left (bounded).
func (r *runner) killAll(pid int) {
	_ = unix.Kill(-pid, unix.SIGKILL) //nolint:errcheck // ESRCH: nothing left
	deadline := time.Now().Add(drainTimeout)
	killed := map[int]bool{}
	// Killed processes that were reparented to this process (it is PID 1 of
	// a container, or a subreaper) would stay zombies: reap exactly those.
	defer func() {
		for p := range killed {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(p, &ws, unix.WNOHANG|unix.WALL, nil) //nolint:errcheck // ECHILD: not ours
		}
	}()
	for {
		n := r.killChrooted(killed)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.log.Warn("sandbox: processes survive SIGKILL", "count", n)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killChrooted sends SIGKILL to every live process whose root directory is
// the rootfs (or below it), adds them to killed and returns how many it
// found.
func (r *runner) killChrooted(killed map[int]bool) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	root := r.spec.RootFS
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		link, err := os.Readlink("/proc/" + e.Name() + "/root")
		if err != nil {
			continue
		}
		if link == root || strings.HasPrefix(link, root+"/") {
			if unix.Kill(pid, unix.SIGKILL) == nil {
				killed[pid] = true
				n++
			}
		}
	}
	return n
}
