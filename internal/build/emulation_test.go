package build

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/dockerfile"
)

// Handlers as the kernel lists them (from tonistiigi/binfmt, which
// docker/setup-qemu-action installs, and Debian's qemu-user-static).
const (
	qemuAarch64 = "enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: POCF\noffset 0\n" +
		"magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
	qemuX8664 = "enabled\ninterpreter /usr/bin/qemu-x86_64\nflags: POCF\noffset 0\n" +
		"magic 7f454c4602010100000000000000000002003e00\nmask fffffffffffefe00fffffffffffffffffeffffff\n"
	qemuS390x = "enabled\ninterpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P\nflags: POCF\noffset 0\n" +
		"magic 7f454c4602020100000000000000000000020016\nmask ffffffffffffff00fffffffffffffffffffeffff\n"
	qemuArm = "enabled\ninterpreter /usr/bin/qemu-arm\nflags: POCF\noffset 0\n" +
		"magic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
	wine = "enabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n"
)

// binfmtDir writes a fake binfmt_misc mount with the given handlers.
func binfmtDir(t *testing.T, status string, handlers map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if status != "" {
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "register"), nil, 0o200); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range handlers {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBinfmtHandles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   string
		handlers map[string]string
		arch     string
		want     bool
		wantErr  bool
	}{
		{name: "qemu-aarch64 runs arm64", status: "enabled", handlers: map[string]string{"qemu-aarch64": qemuAarch64}, arch: "arm64", want: true},
		{name: "any name, matched by magic", status: "enabled", handlers: map[string]string{"aarch64-emu": qemuAarch64}, arch: "arm64", want: true},
		{name: "x86_64 handler for amd64", status: "enabled", handlers: map[string]string{"qemu-x86_64": qemuX8664}, arch: "amd64", want: true},
		{name: "big endian s390x", status: "enabled", handlers: map[string]string{"qemu-s390x": qemuS390x}, arch: "s390x", want: true},
		{name: "32-bit arm is not arm64", status: "enabled", handlers: map[string]string{"qemu-arm": qemuArm}, arch: "arm64"},
		{name: "arm64 is not 32-bit arm", status: "enabled", handlers: map[string]string{"qemu-aarch64": qemuAarch64}, arch: "arm"},
		{name: "arm64 is not s390x", status: "enabled", handlers: map[string]string{"qemu-aarch64": qemuAarch64}, arch: "s390x"},
		{name: "disabled handler", status: "enabled", handlers: map[string]string{"qemu-aarch64": strings.Replace(qemuAarch64, "enabled", "disabled", 1)}, arch: "arm64"},
		{name: "binfmt_misc disabled", status: "disabled", handlers: map[string]string{"qemu-aarch64": qemuAarch64}, arch: "arm64"},
		{name: "extension handler only", status: "enabled", handlers: map[string]string{"wine": wine}, arch: "arm64"},
		{name: "no handlers", status: "enabled", arch: "arm64"},
		{name: "unknown architecture", status: "enabled", handlers: map[string]string{"qemu-aarch64": qemuAarch64}, arch: "vax"},
		{name: "not mounted", arch: "arm64", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := binfmtHandles(binfmtDir(t, tt.status, tt.handlers), tt.arch)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("binfmtHandles = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRunForeignPlatform(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	host := dockerfile.HostPlatform()
	// A platform this host does not run natively, and its handler.
	foreign, handler := v1.Platform{OS: "linux", Architecture: "arm64"}, qemuAarch64
	if host.Architecture == "arm64" {
		foreign, handler = v1.Platform{OS: "linux", Architecture: "amd64"}, qemuX8664
	}
	wantErr := "Dockerfile:3: RUN for " + platformName(foreign) + " needs emulation: this machine is " + platformName(host) +
		" and has no binfmt_misc handler for " + foreign.Architecture +
		" (on GitHub use docker/setup-qemu-action, or a native " + foreign.Architecture + " runner)"
	tests := []struct {
		name     string
		df       string
		platform *v1.Platform // Request.Platform; nil: the host's
		binfmt   map[string]string
		wantErr  string
	}{
		{name: "request platform without handler", df: "FROM busybox\nWORKDIR /w\nRUN echo ok > /ok\n", platform: &foreign, wantErr: wantErr},
		{name: "FROM --platform without handler", df: "FROM --platform=" + dockerfile.FormatPlatform(foreign) + " busybox\nWORKDIR /w\nRUN echo ok > /ok\n", wantErr: wantErr},
		// The busybox binary is the host's: with a (fake) handler the RUN
		// passes the check and runs natively.
		{name: "with handler", df: "FROM busybox\nWORKDIR /w\nRUN echo ok > /ok\n", platform: &foreign, binfmt: map[string]string{"qemu": handler}},
		{name: "host platform needs nothing", df: "FROM busybox\nWORKDIR /w\nRUN echo ok > /ok\n", platform: &host},
		// Where binfmt_misc lies (here: a handler that is not there), the
		// kernel's exec format error becomes the same message.
		{name: "exec format error", df: "FROM busybox\nRUN printf '\\001\\002' > /garbage && chmod 755 /garbage\nRUN [\"/garbage\"]\n",
			platform: &foreign, binfmt: map[string]string{"qemu": handler}, wantErr: wantErr},
		{name: "no RUN needs nothing", df: "FROM busybox\nWORKDIR /w\nCOPY f /f\n", platform: &foreign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := fixture{dockerfile: tt.df, files: map[string]string{"f": "f"}, req: func(r *Request) {
				if tt.platform != nil {
					r.Platform = *tt.platform
				} else {
					r.Platform = v1.Platform{}
				}
			}}
			_, _, logs, err := runBuild(t, f, withBinfmtDir(binfmtDir(t, "enabled", tt.binfmt)))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v\nwant    %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("build: %v\n%s", err, logs)
			}
		})
	}
}

func TestExecFormatError(t *testing.T) {
	t.Parallel()
	host := dockerfile.HostPlatform()
	foreign := v1.Platform{OS: "linux", Architecture: "arm64"}
	if host.Architecture == "arm64" {
		foreign = v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	enoexec := fmt.Errorf("starting /bin/sh: %w", &os.PathError{Op: "fork/exec", Path: "/bin/sh", Err: syscall.ENOEXEC})
	tests := []struct {
		name     string
		platform v1.Platform
		err      error
		want     string
	}{
		{name: "foreign stage", platform: foreign, err: enoexec, want: "RUN for " + platformName(foreign) + " needs emulation: this machine is " + platformName(host)},
		{name: "host stage", platform: host, err: enoexec},
		{name: "other error", platform: foreign, err: fmt.Errorf("starting /bin/sh: %w", syscall.ENOENT)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := &stageState{platform: tt.platform}
			err := st.execFormatError(tt.err)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("error = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Errorf("error = %v, want %q...", err, tt.want)
			}
		})
	}
}
