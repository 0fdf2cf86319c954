package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// binaryEnv names the variable that points the tests at a prebuilt ship
// binary; TestMain builds ./cmd/ship when it is unset.
const binaryEnv = "SHIP_E2E_BINARY"

// shipBinary and shipBuildErr are set once by TestMain, before any test runs.
var (
	shipBinary   string
	shipBuildErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The tests wait on docker and the registry, not on the CPU: run more of
	// them at once than GOMAXPROCS unless -parallel was given.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if p := os.Getenv(binaryEnv); p != "" {
		shipBinary = p
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "ship-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: creating temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	shipBinary = filepath.Join(dir, "ship")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", shipBinary, "./cmd/ship")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		shipBuildErr = fmt.Errorf("building ./cmd/ship: %w\n%s", err, out)
	}
	return m.Run()
}

// shipResult is what one run of the ship binary did.
type shipResult struct {
	Code           int
	Stdout, Stderr string
}

// errorLine returns the last non-empty line of stderr: the one-line cause.
func (r shipResult) errorLine() string {
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	return lines[len(lines)-1]
}

func (r shipResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// runShip runs the ship binary with args in dir with the extra environment
// env (K=V) and returns its exit code and output. It fails the test when
// the binary could not be built or could not be started.
func runShip(t testing.TB, ctx context.Context, dir string, env []string, args ...string) shipResult {
	t.Helper()
	if shipBuildErr != nil {
		t.Fatalf("no ship binary: %v", shipBuildErr)
	}
	cmd := exec.CommandContext(ctx, shipBinary, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := shipResult{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running ship: %v", err)
		}
		res.Code = ee.ExitCode()
	}
	return res
}

// runShipInTemp is runShip with TMPDIR set to a fresh directory that must
// be empty again when ship exits (the test fails otherwise).
func runShipInTemp(t testing.TB, ctx context.Context, dir string, env []string, args ...string) shipResult {
	t.Helper()
	tmp, err := os.MkdirTemp(t.TempDir(), "tmpdir-")
	if err != nil {
		t.Fatal(err)
	}
	res := runShip(t, ctx, dir, append([]string{"TMPDIR=" + tmp}, env...), args...)
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		names := make([]string, len(left))
		for i, l := range left {
			names[i] = l.Name()
		}
		t.Errorf("ship left files in TMPDIR: %v", names)
	}
	return res
}

// cleanEnv is the test process environment without the CI providers'
// variables, so ship behaves as it does locally.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "GITHUB_ACTIONS", k == "GITLAB_CI", k == "SOURCE_DATE_EPOCH",
			strings.HasPrefix(k, "INPUT_"), strings.HasPrefix(k, "SHIP_"),
			strings.HasPrefix(k, "GITHUB_"), strings.HasPrefix(k, "CI_"):
			continue
		}
		env = append(env, kv)
	}
	// Scanning needs a vulnerability DB: the tests that scan give one
	// (e2e/scan_test.go) and turn the scan on with --scan.
	return append(env, "SHIP_SCAN=false")
}
