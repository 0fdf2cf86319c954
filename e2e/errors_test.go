package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestErrors runs the binary into the errors users meet: each must exit
// with its code (2 usage/config, 3 build, 4 push), end stderr with one
// "ship: cause" line, never print a secret, and leave TMPDIR empty.
func TestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	const (
		user     = "shipper"
		password = "right-password-8c1f"
		wrong    = "wrong-password-51d0"
	)
	auth := testbed.StartRegistry(t, testbed.WithHtpasswd(user, password), testbed.WithTLS())
	scratch := "FROM scratch\nCOPY a.txt /a.txt\n"
	tests := []struct {
		name       string
		dockerfile string // "": no Dockerfile in the context
		setup      func(t *testing.T, root, ctxDir string)
		args       func(ctxDir string) []string // after --context ctxDir --output --cache-dir
		wantCode   int
		wantMsg    []string // substrings of the error line
		secret     string
	}{
		{name: "missing context", dockerfile: scratch, wantCode: 2, wantMsg: []string{"no-such-dir"},
			args: func(c string) []string { return []string{"--context", filepath.Join(c, "no-such-dir")} }},
		{name: "missing Dockerfile", wantCode: 2, wantMsg: []string{"Dockerfile"}},
		{name: "missing --file", dockerfile: scratch, wantCode: 2, wantMsg: []string{"other.Dockerfile"},
			args: func(c string) []string { return []string{"--file", filepath.Join(c, "other.Dockerfile")} }},
		{name: "syntax error", dockerfile: "FROM scratch\nCOPY a.txt /\nFROOM x\n", wantCode: 3, wantMsg: []string{"Dockerfile:3"}},
		{name: "bad instruction flag", dockerfile: "FROM scratch\nCOPY --bogus a.txt /\n", wantCode: 3, wantMsg: []string{"Dockerfile:2"}},
		{name: "RUN exit code", dockerfile: "FROM {{REG}}/base/busybox:1\nCOPY a.txt /\nRUN echo failing now; exit 5\n", wantCode: 3,
			wantMsg: []string{"Dockerfile:3", "RUN exited with 5", "failing now"}},
		{name: "RUN secret mount", dockerfile: "FROM scratch\nCOPY a.txt /\nRUN --mount=type=secret,id=x,required cat /run/secrets/x\n", wantCode: 3,
			wantMsg: []string{"Dockerfile:3", "secret x not provided (--secret id=x,...)"}},
		{name: "unknown target", dockerfile: "FROM scratch AS one\nCOPY a.txt /\n", wantCode: 2, wantMsg: []string{"no-such-stage", "stages: one"},
			args: func(string) []string { return []string{"--target", "no-such-stage"} }},
		{name: "unknown from stage", dockerfile: "FROM scratch AS one\nCOPY a.txt /\nFROM scratch\nCOPY --from=no-such-stage /a.txt /\n",
			wantCode: 3, wantMsg: []string{"Dockerfile:4", "--from=no-such-stage names no stage (stages: one)"}},
		{name: "copy source missing", dockerfile: "FROM scratch\nCOPY missing.txt /\n", wantCode: 3, wantMsg: []string{"missing.txt"}},
		{name: "source outside context via symlink", dockerfile: "FROM scratch\nCOPY escape/outside.txt /\n", wantCode: 3,
			wantMsg: []string{"outside.txt"}, secret: "outside-secret",
			setup: func(t *testing.T, root, c string) {
				writeTree(t, root, map[string]file{"outside/outside.txt": txt("outside-secret\n")})
				if err := os.Symlink(filepath.Join(root, "outside"), filepath.Join(c, "escape")); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "source outside context via dotdot", dockerfile: "FROM scratch\nCOPY ../outside.txt /\n", wantCode: 3,
			wantMsg: []string{"outside.txt"}, secret: "outside-secret",
			setup: func(t *testing.T, root, c string) {
				writeTree(t, root, map[string]file{"outside.txt": txt("outside-secret\n")})
			}},
		{name: "base image not found", dockerfile: "FROM {{REG}}/base/no-such-image:1\nCOPY a.txt /\n", wantCode: 3,
			wantMsg: []string{e.reg.Host, "base/no-such-image"}},
		{name: "add checksum mismatch", wantCode: 3, wantMsg: []string{"remote.txt"},
			dockerfile: "FROM scratch\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 {{HTTP}}/remote.txt /r.txt\n"},
		{name: "bad build-arg", dockerfile: scratch, wantCode: 2, wantMsg: []string{"build-arg"},
			args: func(string) []string { return []string{"--build-arg", "=value"} }},
		{name: "bad label", dockerfile: scratch, wantCode: 2, wantMsg: []string{"label"},
			args: func(string) []string { return []string{"--label", "=value"} }},
		{name: "push without tag", dockerfile: scratch, wantCode: 2, wantMsg: []string{"tag"},
			args: func(string) []string { return []string{"--push"} }},
		{name: "bad tag", dockerfile: scratch, wantCode: 2, wantMsg: []string{"UPPER"},
			args: func(string) []string { return []string{"--tag", "registry.example/UPPER:1"} }},
		{name: "unreachable registry", dockerfile: scratch, wantCode: 4, wantMsg: []string{"127.0.0.1:1"},
			args: func(string) []string {
				return []string{"--tag", "127.0.0.1:1/app:1", "--push", "--insecure-registry", "127.0.0.1:1"}
			}},
		{name: "wrong credentials", dockerfile: scratch, wantCode: 4, wantMsg: []string{auth.Host}, secret: wrong,
			args: func(string) []string {
				return []string{"--tag", auth.Ref("app:1"), "--push", "--insecure-registry", auth.Host,
					"--registry-username", user, "--registry-password", wrong}
			}},
		{name: "right credentials", dockerfile: scratch, wantCode: 0, secret: password,
			args: func(string) []string {
				return []string{"--tag", auth.Ref("app:1"), "--push", "--insecure-registry", auth.Host,
					"--registry-username", user, "--registry-password", password}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			root := t.TempDir()
			ctxDir := filepath.Join(root, "context")
			files := map[string]file{"a.txt": txt("a\n")}
			if tc.dockerfile != "" {
				files["Dockerfile"] = txt(e.expand(tc.dockerfile))
			}
			writeTree(t, ctxDir, files)
			if tc.setup != nil {
				tc.setup(t, root, ctxDir)
			}
			work := filepath.Join(root, "work")
			dockerConfig := filepath.Join(root, "docker-config")
			for _, d := range []string{work, dockerConfig} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"--context", ctxDir, "--output", filepath.Join(work, "out"), "--cache-dir", filepath.Join(work, "cache")}
			if tc.args != nil {
				args = append(args, tc.args(ctxDir)...)
			}
			res := runShipInTemp(t, ctx, work, []string{"DOCKER_CONFIG=" + dockerConfig}, args...)
			if res.Code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; %s", res.Code, tc.wantCode, res)
			}
			if tc.secret != "" && strings.Contains(res.Stdout+res.Stderr, tc.secret) {
				t.Errorf("output contains the secret %q: %s", tc.secret, res)
			}
			if tc.wantCode == 0 {
				return
			}
			if tc.wantCode != 4 {
				// Nothing was built: no half-written output either.
				if _, err := os.Stat(filepath.Join(work, "out")); err == nil {
					t.Errorf("a failed build left the output directory behind")
				}
			}
			line := res.errorLine()
			t.Logf("exit %d: %s", res.Code, line)
			if !strings.HasPrefix(line, "ship: ") {
				t.Fatalf("last stderr line %q is not the \"ship: cause\" line; %s", line, res)
			}
			if n := strings.Count(res.Stderr, "\nship: ") + btoi(strings.HasPrefix(res.Stderr, "ship: ")); n != 1 {
				t.Errorf("%d \"ship: \" lines on stderr, want 1: %s", n, res)
			}
			for _, w := range tc.wantMsg {
				if !strings.Contains(line, w) {
					t.Errorf("error line %q lacks %q", line, w)
				}
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
