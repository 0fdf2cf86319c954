package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain runs main instead of the tests when the test binary is started
// by runShip.
func TestMain(m *testing.M) {
	if os.Getenv("SHIP_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runShip runs main in a child process with args, in dir.
func runShip(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SHIP_TEST_RUN_MAIN=1", "GITHUB_ACTIONS=", "GITLAB_CI=", "SHIP_SCAN=false")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running ship: %v", err)
	}
	return out.String(), errb.String(), code
}

func TestShip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       func(dir string) []string
		wantCode   int
		wantStderr string // last line of stderr, exactly; "" skips
		check      func(t *testing.T, dir, stdout string)
	}{
		{
			name:     "help",
			args:     func(string) []string { return []string{"--help"} },
			wantCode: 0,
			check: func(t *testing.T, _, stdout string) {
				if !strings.HasPrefix(stdout, "Usage: ship") || !strings.Contains(stdout, "--registry-mirror") {
					t.Errorf("stdout is not the usage:\n%s", stdout)
				}
			},
		},
		{
			name:       "unknown flag",
			args:       func(string) []string { return []string{"--nope"} },
			wantCode:   2,
			wantStderr: "ship: unknown flag --nope (see ship --help)",
		},
		{
			name:       "scan without an image",
			args:       func(string) []string { return []string{"scan", "--fail-on", "HIGH"} },
			wantCode:   2,
			wantStderr: "ship: ship scan needs an image: ship scan IMAGE [flags]",
		},
		{
			name:       "scan with a bad flag",
			args:       func(string) []string { return []string{"scan", "registry.example/app:1", "--fail-on", "SEVERE"} },
			wantCode:   2,
			wantStderr: `ship: parsing severity "SEVERE": want one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL`,
		},
		{
			name:       "missing context",
			args:       func(dir string) []string { return []string{"--context", filepath.Join(dir, "missing")} },
			wantCode:   2,
			wantStderr: "ship: context directory missing does not exist",
		},
		{
			name:     "local build",
			args:     func(dir string) []string { return []string{"--context", "ctx", "--output", "out"} },
			wantCode: 0,
			check: func(t *testing.T, dir, stdout string) {
				lines := strings.Split(strings.TrimSpace(stdout), "\n")
				var out struct{ Digest string }
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil || !strings.HasPrefix(out.Digest, "sha256:") {
					t.Errorf("last stdout line is not the outputs: %q (%v)", lines[len(lines)-1], err)
				}
				if _, err := os.Stat(filepath.Join(dir, "out", "index.json")); err != nil {
					t.Errorf("no OCI layout: %v", err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "ctx"), 0o755); err != nil {
				t.Fatal(err)
			}
			df := "FROM scratch\nCOPY hello.txt /hello.txt\n"
			if err := os.WriteFile(filepath.Join(dir, "ctx", "Dockerfile"), []byte(df), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "ctx", "hello.txt"), []byte("hello\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := runShip(t, dir, tc.args(dir)...)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstderr:\n%s", code, tc.wantCode, stderr)
			}
			if tc.wantStderr != "" {
				lines := strings.Split(strings.TrimSpace(stderr), "\n")
				want := strings.ReplaceAll(tc.wantStderr, "missing", filepath.Join(dir, "missing"))
				if got := lines[len(lines)-1]; got != want {
					t.Errorf("stderr last line\n got %q\nwant %q", got, want)
				}
			}
			if tc.check != nil {
				tc.check(t, dir, stdout)
			}
		})
	}
}
