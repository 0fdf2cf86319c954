package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestReproducibleOnCI builds a git checkout twice as a GitHub job would,
// on two "machines" (each its own HOME, cache dir and TMPDIR, seconds
// apart): SOURCE_DATE_EPOCH defaults to the commit time of HEAD, so the
// RUN's and COPY's files and the history get the same times and both
// builds give the same digest. Locally (no CI) real times make them differ.
func TestReproducibleOnCI(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed (Debian package git): %v", err)
	}
	reg := testbed.StartRegistry(t)
	testbed.PushImage(t, testbed.BusyboxImage(t), reg.Ref("base/busybox:1"))
	src := t.TempDir()
	writeTree(t, src, map[string]file{
		"Dockerfile": txt("FROM " + reg.Ref("base/busybox:1") + "\n" +
			"RUN mkdir -p /data && echo built > /data/out && date +%s > /dev/null\n" +
			"COPY app.txt /app/\n"),
		"app.txt": txt("app\n"),
	})
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "x"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE=2024-05-01T12:00:00Z", "GIT_AUTHOR_DATE=2024-05-01T12:00:00Z", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	build := func(ci bool) string {
		t.Helper()
		machine := t.TempDir()
		env := []string{"HOME=" + machine}
		if ci {
			env = append(env, "GITHUB_ACTIONS=true", "GITHUB_WORKSPACE="+src,
				"GITHUB_OUTPUT="+filepath.Join(machine, "out"), "GITHUB_STEP_SUMMARY="+filepath.Join(machine, "sum"))
		}
		res := runShipInTemp(t, ctx, machine, env, "--context", src, "--scan=false",
			"--insecure-registry", reg.Host, "--cache-dir", filepath.Join(machine, "cache"), "--output", filepath.Join(machine, "layout"))
		if res.Code != 0 {
			t.Fatalf("ship: %s", res)
		}
		if ci && !strings.Contains(res.Stderr, "SOURCE_DATE_EPOCH: the commit time of HEAD") {
			t.Errorf("no log line naming the commit time:\n%s", res.Stderr)
		}
		lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
		var out struct{ Digest string }
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil || out.Digest == "" {
			t.Fatalf("outputs line %q: %v", lines[len(lines)-1], err)
		}
		return out.Digest
	}
	first := build(true)
	time.Sleep(1100 * time.Millisecond) // real times would differ by a second
	if second := build(true); second != first {
		t.Errorf("two CI builds of one commit: %s and %s, want one digest", first, second)
	}
	local1 := build(false)
	time.Sleep(1100 * time.Millisecond)
	if local2 := build(false); local2 == local1 {
		t.Errorf("two local builds a second apart gave one digest %s: the test cannot tell times apart", local1)
	}
}
