package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/testbed"
)

// Environment variables that point the tests at a current BuildKit daemon
// (the version of the Dockerfile parser ship uses); .ci/buildkitd starts one
// and prints them.
const (
	buildkitAddrEnv = "SHIP_BUILDKIT_ADDR" // e.g. unix:///tmp/x/sock
	buildctlEnv     = "SHIP_BUILDCTL"      // default: buildctl on PATH
)

// currentBuildKit returns a builder that builds with buildctl against the
// daemon at $SHIP_BUILDKIT_ADDR and pushes to the test registry. Without
// one the test fails under CI=true and skips otherwise.
func currentBuildKit(t *testing.T) builder {
	t.Helper()
	addr := os.Getenv(buildkitAddrEnv)
	if addr == "" {
		testbed.RequireService(t, buildkitAddrEnv+" is not set: no current buildkitd (eval \"$(.ci/buildkitd)\")")
	}
	bin := os.Getenv(buildctlEnv)
	if bin == "" {
		bin = "buildctl"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "--addr", addr, "debug", "workers").CombinedOutput(); err != nil {
		testbed.RequireService(t, fmt.Sprintf("buildkitd at %s: %v: %s", addr, err, strings.TrimSpace(string(out))))
	}
	return func(ctx context.Context, t *testing.T, e *env, dir, dockerfile, tag string, c diffCase) error {
		t.Cleanup(func() { e.docker.RemoveImages(context.Background(), tag) })
		args := []string{"--addr", addr, "build", "--progress=plain", "--frontend", "dockerfile.v0",
			"--local", "context=" + dir, "--local", "dockerfile=" + filepath.Dir(dockerfile),
			"--opt", "filename=" + filepath.Base(dockerfile),
			"--output", "type=image,name=" + tag + ",push=true,registry.insecure=true"}
		if c.target != "" {
			args = append(args, "--opt", "target="+c.target)
		}
		for _, a := range c.buildArgs {
			args = append(args, "--opt", "build-arg:"+a)
		}
		if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("buildctl build: %w\n%s", err, out)
		}
		return nil
	}
}

// currentCases use what Docker 20.10's frontend rejects.
func currentCases() []diffCase {
	files := map[string]file{
		"a.txt":            txt("a\n"),
		"debug.log":        txt("log\n"),
		"src/main.go":      txt("package main\n"),
		"src/trace.log":    txt("trace\n"),
		"src/sub/deep.txt": txt("deep\n"),
		"src/run.sh":       txtMode("#!/bin/sh\n", 0o755),
	}
	sum := sha256.Sum256([]byte(httpFiles()["remote.txt"]))
	return []diffCase{
		{name: "heredocs", files: files, dockerfile: base + "ARG NAME=world\n" +
			"COPY <<EOF /app/greeting.txt\nhello $NAME\nEOF\n" +
			"COPY <<\"EOT\" /app/raw.txt\nraw $NAME\nEOT\n" +
			"COPY --chmod=0755 <<EOF /app/run.sh\n#!/bin/sh\necho hi\nEOF\n" +
			"COPY <<-EOF /app/tabs.txt\n\tindented\n\tEOF\n" +
			"COPY --chown=app:app <<one.txt <<two.txt /multi/\n1\none.txt\n2\ntwo.txt\n"},
		{name: "copy link", files: files, dockerfile: base +
			"COPY --link a.txt /linked/\nCOPY --link src /linked-src\nCOPY --link --chown=1000:1000 a.txt /new/dir/a.txt\n"},
		{name: "copy exclude", files: files, dockerfile: base +
			"COPY --exclude=*.log --exclude=src/sub . /app/\nADD --exclude=**/*.go src /add/\n"},
		{name: "add checksum", files: files, dockerfile: base +
			"ADD --checksum=sha256:" + hex.EncodeToString(sum[:]) + " {{HTTP}}/remote.txt /dl/remote.txt\n"},
		{name: "chmod directories", files: files, dockerfile: base +
			"COPY --chmod=600 src /src600\nCOPY --chmod=0750 src/sub /new/parent/\n"},
	}
}

// TestDifferentialCurrentBuildKit compares ship with a current BuildKit
// daemon: every case of TestDifferential (no difference is accepted: this
// reference is the version ship follows) plus what Docker 20.10 rejects.
func TestDifferentialCurrentBuildKit(t *testing.T) {
	t.Parallel()
	ref := currentBuildKit(t)
	e := newEnv(t, true)
	for _, c := range append(diffCases(), currentCases()...) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			c.name = "current " + c.name
			report(t, "current BuildKit and ship", e.runDiff(ctx, t, c, ref, buildWithShip))
		})
	}
}
