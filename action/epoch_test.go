package action

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// gitRepo makes a git repository in a new directory with one commit
// committed at unix time at, and returns the directory.
func gitRepo(t *testing.T, at int64) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git is needed (Debian package git)")
		}
		t.Skip("git not installed")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	date := time.Unix(at, 0).UTC().Format(time.RFC3339)
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "x"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE="+date, "GIT_AUTHOR_DATE=2001-01-01T00:00:00Z", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

func TestCISourceDateEpoch(t *testing.T) {
	t.Parallel()
	const commitTime = 1700000123
	repo := gitRepo(t, commitTime)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	set := time.Unix(42, 0).UTC()
	tests := []struct {
		name string
		cfg  Config
		env  map[string]string
		want int64 // -1: nil
	}{
		{"locally: real times", Config{Context: repo}, nil, -1},
		{"GitHub: HEAD's commit time", Config{Context: filepath.Join(repo, ".")}, map[string]string{"GITHUB_ACTIONS": "true"}, commitTime},
		{"GitLab: CI_COMMIT_TIMESTAMP", Config{Context: repo}, map[string]string{"GITLAB_CI": "true", "CI_COMMIT_TIMESTAMP": "2024-03-01T10:00:00+01:00"}, 1709283600},
		{"GitLab without the variable: HEAD", Config{Context: repo}, map[string]string{"GITLAB_CI": "true"}, commitTime},
		{"set explicitly: kept", Config{Context: repo, SourceDateEpoch: &set}, map[string]string{"GITHUB_ACTIONS": "true"}, 42},
		{"not a checkout: real times", Config{Context: t.TempDir()}, map[string]string{"GITHUB_ACTIONS": "true"}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ciSourceDateEpoch(tt.cfg, func(k string) string { return tt.env[k] }, log)
			switch {
			case tt.want < 0 && got != nil:
				t.Errorf("got %v, want nil", got)
			case tt.want >= 0 && (got == nil || got.Unix() != tt.want):
				t.Errorf("got %v, want unix %d", got, tt.want)
			}
		})
	}
}
