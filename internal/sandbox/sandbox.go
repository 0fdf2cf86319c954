package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
)

// Spec describes the process to run.
type Spec struct {
	// RootFS is the absolute host path of the extracted root filesystem.
	RootFS string
	// Args is the argv; Args[0] is looked up in the rootfs with the PATH of Env
	// when it has no slash.
	Args []string
	// Env is exactly the environment of the process: the host's never leaks.
	Env []string
	// Dir is the working directory inside the rootfs ("" means "/"). It is
	// created with mode 0755 if missing and stays.
	Dir string
	// UID and GID are the numeric user and group the process runs as.
	UID, GID int
	// Groups are the supplementary groups (none when empty).
	Groups []int
	// Mounts are extra mounts: secrets, cache directories, bind sources.
	Mounts []Mount
	// Network is "default" or "" (the host network) or "none".
	Network string
	// Stdin is the process's standard input; nil means /dev/null.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output; nil discards it.
	Stdout, Stderr io.Writer
}

// Mount is a host file or directory made visible inside the rootfs.
type Mount struct {
	// Source is the host path.
	Source string
	// Target is the absolute path inside the rootfs.
	Target string
	// ReadOnly makes the mount read-only (ModeNamespaces only; in ModeChroot
	// changes to a read-only mount are discarded instead).
	ReadOnly bool
	// File says that Source is a regular file, not a directory.
	File bool
	// Socket says that Source is a unix socket (an SSH agent's): in both
	// modes a socket is created at Target, owned by UID:GID with Mode,
	// whose connections are forwarded to Source while the process runs.
	Socket   bool
	UID, GID int
	Mode     fs.FileMode
}

// Mode is how Run isolates the process.
type Mode int

const (
	// ModeNamespaces is a chroot plus private mount, PID (and for Network
	// "none" network) namespaces with /proc, /dev, /sys and bind mounts.
	ModeNamespaces Mode = iota + 1
	// ModeChroot is a plain chroot, for processes without CAP_SYS_ADMIN.
	ModeChroot
)

// String returns "namespaces" or "chroot".
func (m Mode) String() string {
	switch m {
	case ModeNamespaces:
		return "namespaces"
	case ModeChroot:
		return "chroot"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Describe returns the sentence a build logs once about the mode in use.
func (m Mode) Describe() string {
	if m == ModeChroot {
		return "sandbox: no CAP_SYS_ADMIN: RUN runs in a plain chroot without /proc"
	}
	return "sandbox: RUN runs in a chroot with private mount and PID namespaces"
}

// ExitError reports a process that exited with a non-zero status.
type ExitError struct {
	// Code is the exit status, or 128+N for a process killed by signal N.
	Code int
}

func (e *ExitError) Error() string { return fmt.Sprintf("process exited with code %d", e.Code) }

// Result describes what a Run did to the rootfs for the sandbox's own sake.
type Result struct {
	paths []string
}

// SandboxPaths returns the paths, relative to RootFS and slash-separated,
// that the sandbox mounted or copied over during the run (/proc, /dev, /sys,
// etc/resolv.conf, etc/hosts, mount targets). A snapshot of the run's changes
// must ignore them and everything below them.
func (r Result) SandboxPaths() []string { return append([]string(nil), r.paths...) }

// Option configures Run.
type Option func(*options) error

type options struct {
	mode       Mode
	logger     *slog.Logger
	resolvConf string
	hosts      string
}

// WithMode forces a mode instead of Detect's answer.
func WithMode(m Mode) Option {
	return func(o *options) error {
		if m != ModeNamespaces && m != ModeChroot {
			return fmt.Errorf("unknown sandbox mode %d", int(m))
		}
		o.mode = m
		return nil
	}
}

// WithLogger sets the logger for warnings and debug messages (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.logger = l
		return nil
	}
}

// withHostFiles replaces the host's /etc/resolv.conf and /etc/hosts (tests).
func withHostFiles(resolvConf, hosts string) Option {
	return func(o *options) error {
		o.resolvConf, o.hosts = resolvConf, hosts
		return nil
	}
}

// Run runs spec's process in the sandbox and waits for it and every process
// it started. A non-zero exit is an *ExitError. The Result is valid whatever
// the error.
func Run(ctx context.Context, spec Spec, opts ...Option) (Result, error) {
	o := options{logger: slog.New(slog.DiscardHandler), resolvConf: "/etc/resolv.conf", hosts: "/etc/hosts"}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return Result{}, fmt.Errorf("configuring sandbox: %w", err)
		}
	}
	if err := validate(&spec); err != nil {
		return Result{}, err
	}
	if o.mode == 0 {
		o.mode = Detect()
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("running %s: %w", spec.Args[0], err)
	}
	r := &runner{ctx: ctx, spec: spec, opts: o, log: o.logger}
	return r.run()
}

func validate(spec *Spec) error {
	if len(spec.Args) == 0 || spec.Args[0] == "" {
		return errors.New("running sandbox: no command")
	}
	if !filepath.IsAbs(spec.RootFS) {
		return fmt.Errorf("running sandbox: rootfs %q is not absolute", spec.RootFS)
	}
	root, err := filepath.EvalSymlinks(spec.RootFS)
	if err != nil {
		return fmt.Errorf("running sandbox: resolving rootfs: %w", err)
	}
	spec.RootFS = root
	switch spec.Network {
	case "", "default", "host", "none":
	default:
		return fmt.Errorf("running sandbox: unknown network mode %q", spec.Network)
	}
	if spec.Dir == "" {
		spec.Dir = "/"
	}
	if !filepath.IsAbs(spec.Dir) {
		return fmt.Errorf("running sandbox: working directory %q is not absolute", spec.Dir)
	}
	for _, m := range spec.Mounts {
		if !filepath.IsAbs(m.Target) || !filepath.IsAbs(m.Source) {
			return fmt.Errorf("running sandbox: mount %s→%s: paths must be absolute", m.Source, m.Target)
		}
	}
	return nil
}
