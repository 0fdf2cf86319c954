package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/testbed"
)

// actionImageContext prepares the build context of the action image the
// way `make image-rootfs` does (a static, stripped ship, CA certificates, a
// /tmp, /bin/busybox from busybox-static and /bin/sh -> busybox) next to a
// copy of the repository's Dockerfile and .dockerignore.
func actionImageContext(t *testing.T, ctx context.Context, dir string) {
	t.Helper()
	rootfs := filepath.Join(dir, "dist", "rootfs")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w",
		"-o", filepath.Join(rootfs, "usr", "local", "bin", "ship"), "./cmd/ship")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building a static ship: %v\n%s", err, out)
	}
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("reading CA certificates (Debian package ca-certificates): %v", err)
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("reading /bin/busybox (Debian package busybox-static): %v", err)
	}
	writeTree(t, rootfs, map[string]file{
		"etc/ssl/certs/ca-certificates.crt": txt(string(certs)),
		"tmp":                               dirMode(0o1777),
		"bin/busybox":                       txtMode(string(busybox), 0o755),
		"bin/sh":                            symlink("busybox"),
	})
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Dockerfile", ".dockerignore"} {
		data, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// copyDir copies the regular files and directories of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}

// TestActionImage builds the action image from the repository's Dockerfile
// with docker, then runs it as users do (`docker run` with Docker's default
// capabilities, the example mounted read-only) to build the bundled example
// into a tarball that `docker load` accepts. It also has ship build its own
// action image and checks that image runs.
func TestActionImage(t *testing.T) {
	t.Parallel()
	d := testbed.Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	root := t.TempDir()
	imgCtx := filepath.Join(root, "image-context")
	actionImageContext(t, ctx, imgCtx)
	tag := fmt.Sprintf("ship-action-e2e:%d", time.Now().UnixNano())
	t.Cleanup(func() { d.RemoveImages(context.Background(), tag) })
	if err := d.Build(ctx, imgCtx, filepath.Join(imgCtx, "Dockerfile"), tag); err != nil {
		t.Fatalf("docker build of the action image: %v", err)
	}

	src := filepath.Join(root, "src")
	copyDir(t, filepath.Join("..", "examples", "hello"), src)
	out := filepath.Join(root, "out")
	if err := os.MkdirAll(out, 0o777); err != nil {
		t.Fatal(err)
	}
	stdout, err := d.Exec(ctx, "run", "--rm", "--network=none",
		"-v", src+":/src:ro", "-v", out+":/out", tag,
		"--context", "/src", "--output", "/out/layout", "--output-tar", "/out/hello.tar", "--scan=false")
	if err != nil {
		t.Fatalf("docker run of the action image: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	var outputs struct {
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &outputs); err != nil || !strings.HasPrefix(outputs.Digest, "sha256:") {
		t.Fatalf("last stdout line is not the outputs JSON with a digest (%v): %q", err, lines[len(lines)-1])
	}
	index, err := os.ReadFile(filepath.Join(out, "layout", "index.json"))
	if err != nil {
		t.Fatalf("reading the OCI layout written through the mount: %v", err)
	}
	if !strings.Contains(string(index), outputs.Digest) {
		t.Errorf("index.json does not name the digest %s:\n%s", outputs.Digest, index)
	}

	loaded, err := d.Load(ctx, filepath.Join(out, "hello.tar"))
	if err != nil {
		t.Fatalf("docker load of the tarball: %v", err)
	}
	ref := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(loaded), "Loaded image:"))
	if ref == "" || strings.Contains(ref, "\n") {
		t.Fatalf("docker load output %q names no single image", loaded)
	}
	t.Cleanup(func() { d.RemoveImages(context.Background(), ref) })
	cfgJSON, err := d.Exec(ctx, "image", "inspect", "-f", "{{json .Config}}", ref)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		WorkingDir string
		User       string
		Cmd        []string
		Env        []string
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatalf("decoding the loaded image's config: %v", err)
	}
	if cfg.WorkingDir != "/app" || cfg.User != "1000:1000" || !slices.Equal(cfg.Cmd, []string{"python", "-m", "app"}) ||
		!slices.Contains(cfg.Env, "PORT=8080") {
		t.Errorf("loaded image config = %+v, want the example's WORKDIR, USER, CMD and ENV", cfg)
	}

	// GitLab's docker executor runs the job's script with the image's
	// shell, the entrypoint emptied (as templates/ship.yml does).
	script, err := d.Exec(ctx, "run", "--rm", "--network=none", "--entrypoint", "/bin/sh", tag,
		"-c", `set -eo pipefail; echo "shell: $0"; command -v ship; ship --help | grep -c -- --gitlab-token; mkdir -p /tmp/job && cd /tmp/job && pwd`)
	if err != nil {
		t.Fatalf("running a GitLab-style script with the image's /bin/sh: %v\n%s", err, script)
	}
	if want := "shell: /bin/sh\n/usr/local/bin/ship\n1\n/tmp/job\n"; string(script) != want {
		t.Errorf("script in the action image printed %q, want %q", script, want)
	}

	// RUN inside the action image, as GitHub runs container actions: Docker's
	// default capabilities (chroot and mknod, no CAP_SYS_ADMIN), so ship
	// must fall back to a plain chroot. The base comes from a local registry
	// reached over the host network.
	reg := testbed.StartRegistry(t)
	testbed.PushImage(t, testbed.BusyboxImage(t), reg.Ref("base/busybox:1"))
	runCtx := filepath.Join(root, "run-src")
	writeTree(t, runCtx, map[string]file{
		"Dockerfile": txt("FROM " + reg.Ref("base/busybox:1") + "\n" +
			"RUN echo built-without-privileges > /hello && mkdir -p /data && id -u > /data/uid\n" +
			"USER app\nRUN id -un > /tmp/whoami\n" +
			"CMD [\"cat\", \"/hello\", \"/data/uid\", \"/tmp/whoami\"]\n"),
	})
	runOut, err := d.Exec(ctx, "run", "--rm", "--network=host",
		"-v", runCtx+":/src:ro", "-v", out+":/out", tag,
		"--context", "/src", "--output", "/out/run-layout", "--output-tar", "/out/run.tar",
		"--tag", "ship-e2e/run-unprivileged:1", "--insecure-registry", reg.Host, "--scan=false")
	if err != nil {
		t.Fatalf("RUN build in the action image with default capabilities: %v\n%s", err, runOut)
	}
	if _, err := d.Load(ctx, filepath.Join(out, "run.tar")); err != nil {
		t.Fatalf("docker load of the RUN image: %v", err)
	}
	t.Cleanup(func() { d.RemoveImages(context.Background(), "ship-e2e/run-unprivileged:1") })
	got, err := d.Run(ctx, "ship-e2e/run-unprivileged:1")
	if err != nil {
		t.Fatalf("running the image built without privileges: %v", err)
	}
	if want := "built-without-privileges\n0\napp\n"; got != want {
		t.Errorf("image built in the action container prints %q, want %q", got, want)
	}

	// Dogfooding: ship builds its own action image from the same context,
	// and that image runs.
	selfTar := filepath.Join(root, "self.tar")
	selfTag := fmt.Sprintf("ship-action-self:%d", time.Now().UnixNano())
	res := runShip(t, ctx, root, nil, "--context", imgCtx, "--tag", selfTag, "--output", filepath.Join(root, "self-layout"), "--output-tar", selfTar)
	if res.Code != 0 {
		t.Fatalf("ship building its own image: %s", res)
	}
	if _, err := d.Load(ctx, selfTar); err != nil {
		t.Fatalf("docker load of ship's own image: %v", err)
	}
	t.Cleanup(func() { d.RemoveImages(context.Background(), selfTag) })
	help, err := d.Run(ctx, selfTag, "--help")
	if err != nil {
		t.Fatalf("running the action image ship built: %v", err)
	}
	if !strings.Contains(help, "--context") {
		t.Errorf("--help of the self-built image does not list --context:\n%s", help)
	}
}
