package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// DockerEnv names the environment variable that chooses the docker client
// binary. Default: DefaultDocker when it exists, else "docker" on PATH.
const DockerEnv = "SHIP_TEST_DOCKER"

// DefaultDocker is Debian's docker.io client, which matches the 20.10
// daemon and builds with DOCKER_BUILDKIT=1 (a newer client on PATH may
// refuse `docker build` without the buildx plugin).
const DefaultDocker = "/usr/bin/docker"

// DockerClient runs the docker command line client against a working
// daemon, with DOCKER_BUILDKIT=1 in its environment.
type DockerClient struct {
	// Path is the client binary.
	Path string
	env  []string
}

// Docker returns a client for the docker daemon after checking that
// `docker info` works. The binary comes from $SHIP_TEST_DOCKER, else
// DefaultDocker, else "docker" on PATH. A missing client or daemon fails the
// test when CI=true and skips it otherwise.
func Docker(t testing.TB) *DockerClient {
	t.Helper()
	bin := os.Getenv(DockerEnv)
	if bin == "" {
		bin = DefaultDocker
		if _, err := os.Stat(bin); err != nil {
			bin = "docker"
		}
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		RequireService(t, fmt.Sprintf("docker client %q: %v", bin, err))
		return nil
	}
	d := &DockerClient{Path: p, env: append(os.Environ(), "DOCKER_BUILDKIT=1")}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.Exec(ctx, "info", "--format", "{{.ServerVersion}}"); err != nil {
		RequireService(t, fmt.Sprintf("docker daemon: %v", err))
		return nil
	}
	return d
}

// Exec runs the client with args and returns its standard output. The
// error carries the command line and the combined output.
func (d *DockerClient) Exec(ctx context.Context, args ...string) ([]byte, error) {
	return d.exec(ctx, nil, args...)
}

func (d *DockerClient) exec(ctx context.Context, stdout io.Writer, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, d.Path, args...)
	cmd.Env = d.env
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if stdout == nil {
			msg = strings.TrimSpace(out.String() + "\n" + msg)
		}
		return out.Bytes(), fmt.Errorf("running docker %s: %w\n%s", strings.Join(args, " "), err, msg)
	}
	return out.Bytes(), nil
}

// Build runs `docker build` (BuildKit) of contextDir with the Dockerfile at
// dockerfile and tags the result. buildArgs are K=V pairs (--build-arg).
// The error includes the build output.
func (d *DockerClient) Build(ctx context.Context, contextDir, dockerfile, tag string, buildArgs ...string) error {
	return d.BuildTarget(ctx, contextDir, dockerfile, tag, "", buildArgs...)
}

// BuildTarget is Build with --target target (none when target is empty).
func (d *DockerClient) BuildTarget(ctx context.Context, contextDir, dockerfile, tag, target string, buildArgs ...string) error {
	args := []string{"build", "--progress=plain", "-f", dockerfile, "-t", tag}
	if target != "" {
		args = append(args, "--target", target)
	}
	for _, a := range buildArgs {
		args = append(args, "--build-arg", a)
	}
	_, err := d.Exec(ctx, append(args, contextDir)...)
	return err
}

// Push runs `docker push tag`.
func (d *DockerClient) Push(ctx context.Context, tag string) error {
	_, err := d.Exec(ctx, "push", tag)
	return err
}

// Pull runs `docker pull ref`.
func (d *DockerClient) Pull(ctx context.Context, ref string) error {
	_, err := d.Exec(ctx, "pull", "--quiet", ref)
	return err
}

// Run runs `docker run --rm image args...` and returns its standard output.
func (d *DockerClient) Run(ctx context.Context, image string, args ...string) (string, error) {
	out, err := d.Exec(ctx, append([]string{"run", "--rm", "--network=none", image}, args...)...)
	return string(out), err
}

// Load runs `docker load -i tarPath` and returns its output
// ("Loaded image: ...").
func (d *DockerClient) Load(ctx context.Context, tarPath string) (string, error) {
	out, err := d.Exec(ctx, "load", "-i", tarPath)
	return string(out), err
}

// Export writes the flattened file system of image to w as a tar stream:
// it creates a container (never started), runs `docker export` and removes
// the container. The stream contains what `docker create` adds (/.dockerenv,
// /dev, /proc, /sys, /etc/hosts, /etc/hostname, /etc/resolv.conf,
// /etc/mtab).
func (d *DockerClient) Export(ctx context.Context, image string, w io.Writer) error {
	// The command is never run; it only satisfies images without Cmd.
	out, err := d.Exec(ctx, "create", image, "/nonexistent")
	if err != nil {
		return err
	}
	id := strings.TrimSpace(string(out))
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = d.Exec(rctx, "rm", "-f", id)
	}()
	_, err = d.exec(ctx, w, "export", id)
	return err
}

// RemoveImages runs `docker rmi -f` on refs, ignoring errors (cleanup).
func (d *DockerClient) RemoveImages(ctx context.Context, refs ...string) {
	if len(refs) == 0 {
		return
	}
	_, _ = d.Exec(ctx, append([]string{"rmi", "-f"}, refs...)...)
}
