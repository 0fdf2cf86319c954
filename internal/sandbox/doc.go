// Package sandbox runs the process of a Dockerfile RUN instruction inside the
// extracted root filesystem of a stage.
//
// Two modes exist, chosen by Detect or forced with WithMode:
//
//   - ModeNamespaces (the process may unshare a mount namespace and mount,
//     i.e. it has CAP_SYS_ADMIN): Run works on a dedicated, locked OS thread
//     that unshares its mount namespace, so every mount it makes is invisible
//     to the host and disappears with the thread. Inside RootFS it mounts a
//     fresh /proc of the process's own PID namespace (the process is started
//     with PTRACE_TRACEME, so it stops right after its execve while /proc is
//     mounted with the pidns= option of Linux 6.15+; older kernels get a proc
//     of the host's PID namespace and a warning), a tmpfs /dev with null,
//     zero, full, random, urandom, tty, pts (a new devpts instance) and shm, a
//     read-only /sys, read-only binds of the host's /etc/resolv.conf and
//     /etc/hosts, and Spec.Mounts as bind mounts. The process is the init of
//     a new PID namespace (and of a new network namespace with only loopback
//     up for Network "none"): when it exits, the kernel kills everything it
//     left behind. As under runc, signals it has no handler for are ignored
//     by this init. /proc, /dev and /sys must not be symlinks in the rootfs.
//   - ModeChroot (a container with Docker's default capabilities: chroot and
//     mknod work, unshare and mount do not): the process runs chrooted with
//     no /proc. resolv.conf and hosts are copied in (an existing file is
//     backed up and restored byte for byte with its mode, owner and times),
//     missing /dev nodes are created with mknod, file mounts are copied in,
//     and directory mounts are copied in before and, unless ReadOnly, copied
//     back to their Source afterwards (ReadOnly is not enforced in this mode:
//     changes are simply discarded). A directory that already existed at a
//     directory mount's target is renamed aside (".ship-sandbox-*" in the same
//     parent) during the run and renamed back afterwards. Special files
//     (devices, sockets, fifos) inside mounted directories are not copied.
//     Network "none" cannot be isolated without CAP_SYS_ADMIN: Run logs a
//     warning and the process uses the host network. The process and every
//     process still chrooted into RootFS (found through /proc/PID/root, so
//     setsid does not escape) are killed when the process exits or ctx ends.
//
// In both modes fsync, fdatasync, sync_file_range, sync, syncfs and msync of
// the process and its children return success without doing anything (a
// seccomp filter, like systemd-nspawn's --suppress-sync): what a RUN writes is
// read back into its layer from the page cache, and a crash fails the build
// anyway. In ModeChroot the filter needs no_new_privs, which would stop
// setuid programs, so there it applies only to processes running as root.
//
// In both modes the environment is exactly Spec.Env, the program is looked up
// in the rootfs (never on the host), the working directory is created (0755)
// if missing and stays, the user and groups are switched, and a non-zero exit
// is reported as *ExitError (128+signal for a process killed by a signal).
// When ctx ends, every process is killed and Run returns an error wrapping
// the context's cause. Processes killed after being reparented to this
// program (it is PID 1 of a container) are reaped.
//
// Cleanup contract: everything Run adds inside RootFS for the sandbox (mount
// points and parent directories it had to create, copied resolv.conf/hosts,
// device nodes, mount targets) is removed again before Run returns, on
// success, failure and cancellation, and the modification times of the
// directories that held them are restored. A created stub directory that the
// process filled is left in place. Result.SandboxPaths lists the paths the
// sandbox mounted or copied over (relative to RootFS, slash-separated); a
// snapshot must ignore them and everything below them, as BuildKit's layers
// never contain them.
//
// Run is not safe for concurrent use on one RootFS. The program whose Detect
// said ModeChroot should log Mode.Describe once per build.
package sandbox
