//go:build linux

package sandbox

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intesys/ship-action/internal/testbed"
)

// inContainerEnv is set when the test binary runs inside the docker
// container of TestChrootInDockerContainer.
const inContainerEnv = "SHIP_SANDBOX_TEST_IN_CONTAINER"

// TestChrootInDockerContainer runs TestRun inside a `docker run` container
// with Docker's default capabilities, as GitHub runs a container action:
// Detect must answer ModeChroot there and every chroot case must pass.
func TestChrootInDockerContainer(t *testing.T) {
	if os.Getenv(inContainerEnv) != "" {
		t.Skip("already inside the container")
	}
	requireRoot(t)
	t.Parallel()
	d := testbed.Docker(t)
	ctx := t.Context()
	dir := t.TempDir()

	bin := filepath.Join(dir, "sandbox.test")
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test binary: %v\n%s", err, out)
	}

	root := busyboxRoot(t)
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/bin/busybox", filepath.Join(root, busyboxPath[1:])); err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(dir, "rootfs.tar")
	writeTar(t, root, tarPath)
	var b [6]byte
	_, _ = rand.Read(b[:]) //nolint:errcheck // never fails
	tag := "ship-sandbox-test:" + hex.EncodeToString(b[:])
	if _, err := d.Exec(ctx, "import", tarPath, tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.RemoveImages(context.Background(), tag) }) // t.Context() is already cancelled in Cleanup

	out, err := d.Exec(ctx, "run", "--rm", "-e", inContainerEnv+"=1", "-v", bin+":/sandbox.test:ro",
		tag, "/sandbox.test", "-test.run", "^TestRun$", "-test.v")
	if err != nil {
		t.Fatalf("running the tests in a container: %v\n%s", err, out)
	}
	s := string(out)
	t.Log(s)
	for _, want := range []string{"--- PASS: TestRun/chroot/echo_and_exit_code", "--- PASS: TestRun/chroot/cancel_kills_sleep_within_2s", "--- SKIP: TestRun/namespaces", "\nPASS\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("container test output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "--- FAIL") {
		t.Errorf("container tests failed:\n%s", s)
	}
}

func writeTar(t *testing.T, root, dst string) {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			if _, err := io.Copy(tw, in); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("writing %s: %v", dst, err)
	}
}
