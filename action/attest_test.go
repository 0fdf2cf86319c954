package action

import (
	"slices"
	"testing"
)

// TestCISourceAndInvocation reads the git source and the run's URL of the
// provenance from GitHub's and GitLab's variables, and nothing off CI.
func TestCISourceAndInvocation(t *testing.T) {
	tests := []struct {
		name                  string
		env                   map[string]string
		uri, ref, commit, inv string
	}{
		{"local", map[string]string{"GITHUB_SHA": "abc"}, "", "", "", ""},
		{"github", map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "org/app", "GITHUB_SHA": "abc",
			"GITHUB_REF": "refs/heads/main", "GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2"},
			"https://github.com/org/app", "refs/heads/main", "abc", "https://github.com/org/app/actions/runs/42/attempts/2"},
		{"github enterprise", map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://ghe.example/", "GITHUB_REPOSITORY": "org/app",
			"GITHUB_SHA": "abc", "GITHUB_RUN_ID": "7"},
			"https://ghe.example/org/app", "", "abc", "https://ghe.example/org/app/actions/runs/7"},
		{"gitlab", map[string]string{"GITLAB_CI": "true", "CI_PROJECT_URL": "https://gitlab.example/g/p", "CI_COMMIT_SHA": "def",
			"CI_COMMIT_REF_NAME": "feature", "CI_JOB_URL": "https://gitlab.example/g/p/-/jobs/9"},
			"https://gitlab.example/g/p", "feature", "def", "https://gitlab.example/g/p/-/jobs/9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := func(k string) string { return tc.env[k] }
			src := ciSource(env)
			switch {
			case tc.uri == "" && src != nil:
				t.Errorf("source %+v, want none", src)
			case tc.uri != "" && (src == nil || src.URI != tc.uri || src.Ref != tc.ref || src.Commit != tc.commit):
				t.Errorf("source %+v, want %s %s %s", src, tc.uri, tc.ref, tc.commit)
			}
			if got := ciInvocation(env); got != tc.inv {
				t.Errorf("invocation %q, want %q", got, tc.inv)
			}
		})
	}
}

// TestTagRepositories lists each repository of the tags once, in order.
func TestTagRepositories(t *testing.T) {
	got := tagRepositories([]string{"localhost:5000/app:1", "localhost:5000/app:latest", "ghcr.io/org/app:1", "localhost:5000/other:1"})
	want := []string{"localhost:5000/app", "ghcr.io/org/app", "localhost:5000/other"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
