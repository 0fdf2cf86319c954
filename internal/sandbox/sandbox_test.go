//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const busyboxPath = "/usr/bin/busybox"

// requireRoot fails under CI=true and skips otherwise when the test cannot
// run: not root, or no busybox.
func requireRoot(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "not running as root"
	} else if _, err := os.Stat(busyboxPath); err != nil {
		why = "busybox-static missing: " + err.Error()
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("sandbox tests need root and busybox (CI=true): %s", why)
	}
	t.Skipf("skipping: %s (set CI=true to make this a failure)", why)
}

// busyboxRoot builds a hermetic rootfs: /bin/busybox, an applet symlink for
// each applet in /bin, /etc/passwd and /etc/group, /tmp, /root. No /proc,
// /dev, /sys, /run: the sandbox must create and remove them.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"bin", "etc", "root", "tmp", "home/app"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		t.Fatalf("listing busybox applets: %v", err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\nstaff:x:50:app\napp:x:1000:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Fixed times, so that a changed mtime is visible in listings.
	old := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// listing describes every entry below root: type, mode, owner, size, mtime,
// link target.
func listing(t *testing.T, root string) map[string]string {
	t.Helper()
	l := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		rel, _ := filepath.Rel(root, p)
		l[rel] = fmt.Sprintf("%v %d:%d size=%d mtime=%d link=%s", fi.Mode(), st.Uid, st.Gid, fi.Size(), fi.ModTime().UnixNano(), link)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func diffListings(before, after map[string]string) []string {
	var d []string
	for k, v := range before {
		if a, ok := after[k]; !ok {
			d = append(d, "removed "+k)
		} else if a != v {
			d = append(d, "changed "+k+": "+v+" → "+a)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return d
}

// mountsUnder returns the host's mount table lines (of this process's
// main mount namespace) that mention root: other programs on the machine
// mount and unmount concurrently, the sandbox must only leave none of its own.
func mountsUnder(t *testing.T, root string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, root) {
			lines = append(lines, l)
		}
	}
	return lines
}

// chrootedProcs lists the processes whose root is root.
func chrootedProcs(root string) []string {
	var pids []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if link, err := os.Readlink("/proc/" + e.Name() + "/root"); err == nil && (link == root || strings.HasPrefix(link, root+"/")) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

type runCase struct {
	name string
	// args run with /bin/sh -c when script is set.
	script string
	args   []string
	spec   func(t *testing.T, s *Spec)
	// cancelAfter cancels the context after that long.
	cancelAfter time.Duration
	// changes are the listing entries the command itself changes.
	changes []string
	check   func(t *testing.T, mode Mode, root, stdout, stderr string, err error)
	// after checks the host side after the run.
	after func(t *testing.T, spec Spec)
	// during runs 200ms after the start of Run, concurrently with it.
	during func(t *testing.T, root string)
}

func wantOK(t *testing.T, err error, stderr string) {
	t.Helper()
	if err != nil {
		t.Fatalf("Run: %v; stderr: %s", err, stderr)
	}
}

func TestRun(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cr3t-value"), 0o400); err != nil {
		t.Fatal(err)
	}
	hostDir := t.TempDir()
	resolvConf := filepath.Join(hostDir, "resolv.conf")
	hosts := filepath.Join(hostDir, "hosts")
	if err := os.WriteFile(resolvConf, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n192.0.2.1 example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []runCase{{
		name:   "echo and exit code",
		script: "echo hello; echo oops >&2; exit 3",
		check: func(t *testing.T, _ Mode, _, stdout, stderr string, err error) {
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Code != 3 {
				t.Fatalf("err = %v, want ExitError 3", err)
			}
			if stdout != "hello\n" || stderr != "oops\n" {
				t.Fatalf("stdout %q stderr %q", stdout, stderr)
			}
		},
	}, {
		name:   "killed by a signal",
		script: "kill -TERM $$; exit 7",
		check: func(t *testing.T, mode Mode, _, _, stderr string, err error) {
			want := 128 + 15
			if mode == ModeNamespaces {
				// The shell is the PID namespace's init (as under runc): a
				// signal it has no handler for is ignored.
				want = 7
			}
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Code != want {
				t.Fatalf("err = %v, want ExitError %d; stderr %s", err, want, stderr)
			}
		},
	}, {
		name:   "SIGKILL gives 137",
		script: "kill -9 $$; exit 7",
		check: func(t *testing.T, mode Mode, _, _, stderr string, err error) {
			want := 137
			if mode == ModeNamespaces {
				want = 7 // init cannot SIGKILL itself from inside
			}
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Code != want {
				t.Fatalf("err = %v, want ExitError %d; stderr %s", err, want, stderr)
			}
		},
	}, {
		name: "env exactly as given",
		args: []string{"env"},
		spec: func(_ *testing.T, s *Spec) { s.Env = []string{"A=1", "PATH=/bin", "B=two words"} },
		check: func(t *testing.T, _ Mode, _, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if stdout != "A=1\nPATH=/bin\nB=two words\n" {
				t.Fatalf("env = %q", stdout)
			}
		},
	}, {
		name: "empty env, program found in default PATH",
		args: []string{"env"},
		spec: func(_ *testing.T, s *Spec) { s.Env = nil },
		check: func(t *testing.T, _ Mode, _, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if stdout != "" {
				t.Fatalf("env = %q, want nothing", stdout)
			}
		},
	}, {
		name: "program missing",
		args: []string{"no-such-program"},
		check: func(t *testing.T, _ Mode, _, _, _ string, err error) {
			if err == nil || !strings.Contains(err.Error(), "not found") {
				t.Fatalf("err = %v, want not found", err)
			}
		},
	}, {
		name:    "working directory created",
		script:  "pwd; touch here",
		spec:    func(_ *testing.T, s *Spec) { s.Dir = "/srv/app/sub" },
		changes: []string{".", "srv", "srv/app", "srv/app/sub", "srv/app/sub/here"},
		check: func(t *testing.T, _ Mode, root, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if stdout != "/srv/app/sub\n" {
				t.Fatalf("pwd = %q", stdout)
			}
			fi, err := os.Stat(filepath.Join(root, "srv/app/sub"))
			if err != nil || fi.Mode().Perm() != 0o755 {
				t.Fatalf("workdir: %v %v", fi, err)
			}
		},
	}, {
		// fsync of /dev/null fails with EINVAL when it reaches the kernel.
		name:   "sync calls of root are no-ops",
		script: "sync /dev/null && sync -d /dev/null && echo synced",
		check: func(t *testing.T, _ Mode, _, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if stdout != "synced\n" {
				t.Fatalf("stdout = %q", stdout)
			}
		},
	}, {
		name:   "sync calls of other users are real without CAP_SYS_ADMIN",
		script: "sync /dev/null && echo synced",
		spec:   func(_ *testing.T, s *Spec) { s.UID, s.GID = 1000, 1000 },
		check: func(t *testing.T, mode Mode, _, stdout, stderr string, err error) {
			if mode == ModeNamespaces {
				wantOK(t, err, stderr)
				return
			}
			var ee *ExitError
			if !errors.As(err, &ee) || !strings.Contains(stderr, "Invalid argument") {
				t.Fatalf("err = %v, stderr %q: want fsync's EINVAL", err, stderr)
			}
		},
	}, {
		name:   "user, group and supplementary groups",
		script: "id -u; id -g; id -G",
		spec:   func(_ *testing.T, s *Spec) { s.UID, s.GID, s.Groups = 1000, 1000, []int{50} },
		check: func(t *testing.T, _ Mode, _, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if stdout != "1000\n1000\n1000 50\n" {
				t.Fatalf("id = %q", stdout)
			}
		},
	}, {
		name:   "root has no supplementary groups of the host",
		script: "id -G",
		check: func(t *testing.T, _ Mode, _, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if stdout != "0\n" {
				t.Fatalf("id -G = %q", stdout)
			}
		},
	}, {
		name:   "proc",
		script: "echo $$; ps -o pid,comm | sed 1d | wc -l; cat /proc/self/status | grep -c ^Pid",
		check: func(t *testing.T, mode Mode, _, stdout, stderr string, err error) {
			if mode == ModeChroot {
				if err == nil {
					t.Fatalf("ps without /proc succeeded: %q", stdout)
				}
				return
			}
			wantOK(t, err, stderr)
			lines := strings.Fields(stdout)
			if len(lines) != 3 || lines[0] != "1" || lines[2] != "1" {
				t.Fatalf("output %q: want pid 1 and /proc/self", stdout)
			}
			// sh, ps (and the pipe's sed, wc): never the host's processes.
			if n, err := strconv.Atoi(lines[1]); err != nil || n > 4 {
				t.Fatalf("ps lists %s processes: the host's?", lines[1])
			}
		},
	}, {
		name:   "dev nodes",
		script: "echo x >/dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c && test -c /dev/full",
		check: func(t *testing.T, _ Mode, _, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if strings.Fields(stdout)[0] != "4" || strings.Fields(stdout)[1] != "4" {
				t.Fatalf("output %q", stdout)
			}
		},
	}, {
		name:   "sys read-only, shm writable",
		script: "test -d /sys/kernel; if touch /sys/x 2>/dev/null; then echo sys-writable; fi; echo ok > /dev/shm/f && cat /dev/shm/f",
		check: func(t *testing.T, mode Mode, _, stdout, stderr string, err error) {
			if mode == ModeChroot {
				return // no /sys, no shm
			}
			wantOK(t, err, stderr)
			if stdout != "ok\n" {
				t.Fatalf("output %q", stdout)
			}
		},
	}, {
		name:   "resolv.conf and hosts",
		script: "cat /etc/resolv.conf /etc/hosts",
		check: func(t *testing.T, _ Mode, _, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if stdout != "nameserver 192.0.2.53\n127.0.0.1 localhost\n192.0.2.1 example.test\n" {
				t.Fatalf("output %q", stdout)
			}
		},
	}, {
		name:   "existing resolv.conf restored",
		script: "cat /etc/resolv.conf; echo more >> /etc/resolv.conf 2>/dev/null; true",
		spec: func(t *testing.T, s *Spec) {
			p := filepath.Join(s.RootFS, "etc/resolv.conf")
			if err := os.WriteFile(p, []byte("nameserver 198.51.100.1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, 1000, 50); err != nil {
				t.Fatal(err)
			}
			old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(filepath.Dir(p), old, old); err != nil {
				t.Fatal(err)
			}
		},
		check: func(t *testing.T, _ Mode, root, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if stdout != "nameserver 192.0.2.53\n" {
				t.Fatalf("output %q", stdout)
			}
			b, err := os.ReadFile(filepath.Join(root, "etc/resolv.conf"))
			if err != nil || string(b) != "nameserver 198.51.100.1\n" {
				t.Fatalf("resolv.conf after: %q %v", b, err)
			}
		},
	}, {
		name:   "secret file mount",
		script: "cat /run/secrets/token; if echo x > /run/secrets/token 2>/dev/null; then echo writable; fi",
		spec: func(_ *testing.T, s *Spec) {
			s.Mounts = []Mount{{Source: secret, Target: "/run/secrets/token", File: true, ReadOnly: true}}
		},
		check: func(t *testing.T, mode Mode, root, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			want := "s3cr3t-value"
			if mode == ModeNamespaces {
				want += "" // read-only bind: the write fails
			}
			if !strings.HasPrefix(stdout, want) {
				t.Fatalf("output %q", stdout)
			}
			if mode == ModeNamespaces && strings.Contains(stdout, "writable") {
				t.Fatalf("read-only secret was writable")
			}
			if _, err := os.Lstat(filepath.Join(root, "run")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("/run left in the rootfs: %v", err)
			}
			b, _ := os.ReadFile(secret)
			if string(b) != "s3cr3t-value" {
				t.Fatalf("secret source changed: %q", b)
			}
		},
	}, {
		name:   "cache dir mount keeps what the run writes",
		script: "cat /var/cache/x/old; echo new > /var/cache/x/new",
		spec: func(t *testing.T, s *Spec) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "old"), []byte("old\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			s.Mounts = []Mount{{Source: dir, Target: "/var/cache/x"}}
		},
		check: func(t *testing.T, _ Mode, root, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if stdout != "old\n" {
				t.Fatalf("output %q", stdout)
			}
			if _, err := os.Lstat(filepath.Join(root, "var")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("/var left in the rootfs: %v", err)
			}
		},
		after: func(t *testing.T, s Spec) {
			b, err := os.ReadFile(filepath.Join(s.Mounts[0].Source, "new"))
			if err != nil || string(b) != "new\n" {
				t.Fatalf("cache source after the run: %q %v", b, err)
			}
		},
	}, {
		name:   "read-only dir mount over an existing directory",
		script: "ls /home/app; echo x > /home/app/written 2>/dev/null; true",
		spec: func(t *testing.T, s *Spec) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "from-source"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(s.RootFS, "home/app/original"), []byte("o"), 0o644); err != nil {
				t.Fatal(err)
			}
			s.Mounts = []Mount{{Source: dir, Target: "/home/app", ReadOnly: true}}
		},
		check: func(t *testing.T, _ Mode, root, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if stdout != "from-source\n" {
				t.Fatalf("ls = %q", stdout)
			}
			if _, err := os.Stat(filepath.Join(root, "home/app/original")); err != nil {
				t.Fatalf("original content not restored: %v", err)
			}
		},
		after: func(t *testing.T, s Spec) {
			if _, err := os.Stat(filepath.Join(s.Mounts[0].Source, "written")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("read-only mount source was written: %v", err)
			}
		},
	}, {
		name:   "resolv.conf symlink pointing out of the rootfs",
		script: "cat /etc/resolv.conf",
		spec: func(t *testing.T, s *Spec) {
			if err := os.Symlink("../../../../../../ship-sandbox-escape/resolv.conf", filepath.Join(s.RootFS, "etc/resolv.conf")); err != nil {
				t.Fatal(err)
			}
		},
		check: func(t *testing.T, _ Mode, _, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if stdout != "nameserver 192.0.2.53\n" {
				t.Fatalf("output %q", stdout)
			}
			if _, err := os.Lstat("/ship-sandbox-escape"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("sandbox wrote outside the rootfs: %v", err)
			}
		},
	}, {
		name:    "run replaces a mount parent by a symlink to the host",
		changes: []string{".", "run"},
		spec: func(t *testing.T, s *Spec) {
			h := t.TempDir()
			if err := os.MkdirAll(filepath.Join(h, "secrets"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(h, "secrets/token"), []byte("host-data"), 0o644); err != nil {
				t.Fatal(err)
			}
			s.Mounts = []Mount{{Source: secret, Target: "/run/secrets/token", File: true, ReadOnly: true}}
			s.Args = []string{"/bin/sh", "-c", "rm -rf /run 2>/dev/null; [ -e /run ] || ln -s " + h + " /run; true"}
			s.Env = append(s.Env, "HOSTDIR="+h)
		},
		check: func(t *testing.T, _ Mode, _, _, stderr string, err error) {
			wantOK(t, err, stderr)
		},
		after: func(t *testing.T, s Spec) {
			var h string
			for _, kv := range s.Env {
				if v, ok := strings.CutPrefix(kv, "HOSTDIR="); ok {
					h = v
				}
			}
			b, err := os.ReadFile(filepath.Join(h, "secrets/token"))
			if err != nil || string(b) != "host-data" {
				t.Fatalf("host file touched by the cleanup: %q %v", b, err)
			}
		},
	}, {
		name:   "background child does not survive",
		script: "sleep 100 & echo started",
		check: func(t *testing.T, _ Mode, root, stdout, stderr string, err error) {
			wantOK(t, err, stderr)
			if p := chrootedProcs(root); len(p) != 0 {
				t.Fatalf("processes left in the rootfs: %v", p)
			}
		},
	}, {
		name:   "setsid daemon does not survive",
		script: "setsid sleep 100 </dev/null >/dev/null 2>&1 & sleep 0.2",
		check: func(t *testing.T, _ Mode, root, _, stderr string, err error) {
			wantOK(t, err, stderr)
			if p := chrootedProcs(root); len(p) != 0 {
				t.Fatalf("processes left in the rootfs: %v", p)
			}
		},
	}, {
		name:        "cancel kills sleep within 2s",
		script:      "sleep 100",
		cancelAfter: 300 * time.Millisecond,
		check: func(t *testing.T, mode Mode, root, _, _ string, err error) {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if p := chrootedProcs(root); len(p) != 0 {
				t.Fatalf("processes left in the rootfs: %v", p)
			}
			// The kill is over when Run returns: a command started in
			// the same rootfs right away is not killed with the first.
			again := Spec{RootFS: root, Args: []string{"/bin/sh", "-c", "sleep 0.3 && echo again"}, Env: []string{"PATH=/bin"}}
			var out, errOut bytes.Buffer
			again.Stdout, again.Stderr = &out, &errOut
			if _, err := Run(t.Context(), again, WithMode(mode), withHostFiles(resolvConf, hosts)); err != nil || out.String() != "again\n" {
				t.Errorf("command run after the cancelled one: %v, output %q, %q", err, out.String(), errOut.String())
			}
		},
	}, {
		name:   "host sees no sandbox mount during the run",
		script: "test -e /dev/null && sleep 0.6",
		check: func(t *testing.T, _ Mode, _, _, stderr string, err error) {
			wantOK(t, err, stderr)
		},
		during: func(t *testing.T, root string) {
			if got := mountsUnder(t, root); len(got) > 0 {
				t.Errorf("host sees mounts in the rootfs during the run:\n%s", strings.Join(got, "\n"))
			}
			if _, err := os.Lstat(filepath.Join(root, "dev")); err != nil {
				t.Errorf("no /dev stub during the run: %v", err)
			}
		},
	}, {
		name:   "proc symlinked elsewhere is refused",
		script: "true",
		spec: func(t *testing.T, s *Spec) {
			if err := os.Symlink("/etc", filepath.Join(s.RootFS, "proc")); err != nil {
				t.Fatal(err)
			}
		},
		check: func(t *testing.T, mode Mode, root, _, _ string, err error) {
			if mode == ModeChroot {
				if err != nil {
					t.Fatalf("chroot mode mounts nothing on /proc: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "symlink") {
				t.Fatalf("err = %v, want a refusal", err)
			}
		},
	}, {
		name:   "no-op leaves the rootfs as it was",
		script: "true",
		check: func(t *testing.T, _ Mode, _, _, stderr string, err error) {
			wantOK(t, err, stderr)
		},
	}, {
		name:   "network none",
		script: "grep -c : /proc/net/dev; ip link show lo | grep -c ',UP'",
		spec:   func(_ *testing.T, s *Spec) { s.Network = "none" },
		check: func(t *testing.T, mode Mode, _, stdout, stderr string, err error) {
			if mode == ModeChroot {
				return // not isolated without CAP_SYS_ADMIN (and no /proc)
			}
			wantOK(t, err, stderr)
			if stdout != "1\n1\n" {
				t.Fatalf("interfaces: %q, want only lo, up", stdout)
			}
		},
	}}

	for _, mode := range []Mode{ModeNamespaces, ModeChroot} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			if mode == ModeNamespaces && os.Getenv(inContainerEnv) != "" {
				// Docker's default capabilities, as GitHub runs a container action.
				if m := Detect(); m != ModeChroot {
					t.Fatalf("Detect() = %v in a default container, want chroot", m)
				}
				t.Skip("skipping: in a container with default capabilities")
			}
			if mode == ModeNamespaces && Detect() != ModeNamespaces {
				if os.Getenv("CI") == "true" {
					t.Fatal("namespaces unavailable under CI=true")
				}
				t.Skip("skipping: this process cannot create mount namespaces")
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					root := busyboxRoot(t)
					spec := Spec{RootFS: root, Env: []string{"PATH=/bin"}, Network: "default"}
					if tc.script != "" {
						spec.Args = []string{"/bin/sh", "-c", tc.script}
					} else {
						spec.Args = tc.args
					}
					if tc.spec != nil {
						tc.spec(t, &spec)
					}
					var stdout, stderr bytes.Buffer
					spec.Stdout, spec.Stderr = &stdout, &stderr
					before := listing(t, root)
					ctx := t.Context()
					if tc.cancelAfter > 0 {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
						defer cancel()
						time.AfterFunc(tc.cancelAfter, cancel)
					}
					if tc.during != nil {
						done := make(chan struct{})
						defer func() { <-done }()
						time.AfterFunc(200*time.Millisecond, func() { defer close(done); tc.during(t, root) })
					}
					start := time.Now()
					res, err := Run(ctx, spec, WithMode(mode), withHostFiles(resolvConf, hosts))
					if d := time.Since(start); d > 2*time.Second+tc.cancelAfter {
						t.Errorf("Run took %v", d)
					}
					tc.check(t, mode, root, stdout.String(), stderr.String(), err)
					if tc.after != nil {
						tc.after(t, spec)
					}
					if got := mountsUnder(t, root); len(got) > 0 {
						t.Errorf("host mount table has mounts in the rootfs after Run:\n%s", strings.Join(got, "\n"))
					}
					d := diffListings(before, listing(t, root))
					d = slices.DeleteFunc(d, func(s string) bool {
						for _, c := range tc.changes {
							if strings.HasPrefix(s, "added "+c+"") && strings.TrimPrefix(s, "added ") == c ||
								strings.HasPrefix(s, "changed "+c+":") {
								return true
							}
						}
						return false
					})
					if len(d) > 0 {
						t.Errorf("rootfs changed beyond the command's own changes:\n%s", strings.Join(d, "\n"))
					}
					if paths := res.SandboxPaths(); err == nil && (!slices.Contains(paths, "proc") || !slices.Contains(paths, "etc/resolv.conf")) {
						t.Errorf("SandboxPaths = %v", paths)
					}
				})
			}
		})
	}
}
