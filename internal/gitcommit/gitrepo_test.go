package gitcommit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// baseTime is the committer time of commit 0 in the test repositories;
// commit n is one hour later per n.
const baseTime = 1700000000

// requireGit fails the test on CI and skips it elsewhere when the git
// binary is missing.
func requireGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("git binary required on CI: %v", err)
		}
		t.Skipf("git binary not found: %v", err)
	}
}

// gitEnv returns an environment isolated from the user's and system git
// configuration, with fixed identities and dates.
func gitEnv(t *testing.T, date string) []string {
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	return append(env,
		"HOME="+home,
		"XDG_CONFIG_HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_CONFIG_COUNT=4",
		"GIT_CONFIG_KEY_0=gc.auto", "GIT_CONFIG_VALUE_0=0",
		"GIT_CONFIG_KEY_1=maintenance.auto", "GIT_CONFIG_VALUE_1=false",
		"GIT_CONFIG_KEY_2=commit.gpgsign", "GIT_CONFIG_VALUE_2=false",
		"GIT_CONFIG_KEY_3=advice.detachedHead", "GIT_CONFIG_VALUE_3=false",
		"GIT_AUTHOR_NAME=Author Name", "GIT_AUTHOR_EMAIL=author@example.com",
		"GIT_COMMITTER_NAME=Committer Name", "GIT_COMMITTER_EMAIL=committer@example.com",
		// The author date differs from the committer date, so reading the
		// wrong line shows.
		"GIT_AUTHOR_DATE=1600000000 +0000",
		"GIT_COMMITTER_DATE="+date,
	)
}

// git runs git in dir and returns its trimmed standard output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return gitAt(t, dir, "1000000000 +0000", args...)
}

// gitAt runs git in dir with the committer date date.
func gitAt(t *testing.T, dir, date string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(t, date)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// initRepo creates a repository with branch main in a new directory.
func initRepo(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, dir, append([]string{"init", "-q", "-b", "main"}, args...)...)
	return dir
}

// commitN makes commit number n: a file that grows by one line per commit
// and a long, mostly identical message, so packs hold deltas of both blobs
// and commits.
func commitN(t *testing.T, dir string, n int) {
	t.Helper()
	var file, msg strings.Builder
	for i := 0; i <= n; i++ {
		fmt.Fprintf(&file, "line %d of a file that grows with every commit\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "grow.txt"), []byte(file.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&msg, "commit %d\n\n", n)
	for i := range 200 {
		fmt.Fprintf(&msg, "body line %d repeated in every commit message to make commits worth deltifying\n", i)
	}
	fmt.Fprintf(&msg, "end of commit %d\n", n)
	git(t, dir, "add", "grow.txt")
	gitAt(t, dir, commitDate(n), "commit", "-q", "-m", msg.String())
}

// commitDate returns the committer date of commit n in git's internal
// format, in a zone other than UTC.
func commitDate(n int) string {
	return fmt.Sprintf("%d +0100", baseTime+3600*n)
}

// makeCommits makes commits 0 to count-1.
func makeCommits(t *testing.T, dir string, count int) {
	t.Helper()
	for n := range count {
		commitN(t, dir, n)
	}
}

// gitHead returns what git says of rev in dir: its committer time and id.
func gitHead(t *testing.T, dir, rev string) (time.Time, string) {
	t.Helper()
	sec, err := strconv.ParseInt(git(t, dir, "log", "-1", "--format=%ct", rev), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(sec, 0).UTC(), git(t, dir, "rev-parse", rev)
}

// checkHead compares HeadTime(dir) with git's answer for HEAD in checkout
// (dir itself, unless dir is a subdirectory or a relative path).
func checkHead(t *testing.T, dir, checkout string) (time.Time, string) {
	t.Helper()
	wantTime, wantID := gitHead(t, checkout, "HEAD")
	gotTime, gotID, err := HeadTime(dir)
	if err != nil {
		t.Fatalf("HeadTime(%s): %v", dir, err)
	}
	if gotID != wantID {
		t.Errorf("HeadTime(%s) commit = %s, git says %s", dir, gotID, wantID)
	}
	if !gotTime.Equal(wantTime) || gotTime.Location() != time.UTC {
		t.Errorf("HeadTime(%s) time = %v, git says %v", dir, gotTime, wantTime)
	}
	return gotTime, gotID
}

// checkError runs HeadTime(dir) and checks it fails with a one-line
// message containing want.
func checkError(t *testing.T, dir, want string) {
	t.Helper()
	gotTime, gotID, err := HeadTime(dir)
	if err == nil {
		t.Fatalf("HeadTime(%s) = %v, %s; want an error containing %q", dir, gotTime, gotID, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("HeadTime(%s) error = %q; want it to contain %q", dir, err, want)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("HeadTime(%s) error spans lines: %q", dir, err)
	}
	if gotID != "" || !gotTime.IsZero() {
		t.Errorf("HeadTime(%s) returned %v, %q with an error", dir, gotTime, gotID)
	}
}

// packEntries returns verify-pack's lines for the objects of the single
// pack in dir: id → fields (type, size, size in pack, offset[, depth, base]).
func packEntries(t *testing.T, dir string) (string, map[string][]string) {
	t.Helper()
	idx := singlePackIndex(t, dir)
	entries := map[string][]string{}
	for line := range strings.SplitSeq(git(t, dir, "verify-pack", "-v", idx), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && isHexID(f[0]) {
			entries[f[0]] = f[1:]
		}
	}
	return idx, entries
}

// singlePackIndex returns the path of the only pack index of dir's
// repository.
func singlePackIndex(t *testing.T, dir string) string {
	t.Helper()
	idx, err := filepath.Glob(filepath.Join(dir, ".git", "objects", "pack", "*.idx"))
	if err != nil || len(idx) != 1 {
		t.Fatalf("want one pack index, found %v (%v)", idx, err)
	}
	return idx[0]
}
