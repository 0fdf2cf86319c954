package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/testbed"
)

// Commits of the fake GitHub events: on pull_request events GITHUB_SHA is
// the merge commit, which no reviewer sees; the check run belongs on the
// pull request's head.
const (
	prHeadSHA  = "1111111111111111111111111111111111111111"
	prMergeSHA = "2222222222222222222222222222222222222222"
	pushSHA    = "3333333333333333333333333333333333333333"
	prNumber   = 7
	ghRepo     = "intesys/app"
	secretRows = 60 // lines with a secret: more annotations than one request takes
)

// githubBed is a repository checked out in a GitHub workspace, a fake
// GitHub API, a registry with the base image and the fixture vulnerability
// DB: what a GitHub job of ship sees.
type githubBed struct {
	api       *testbed.GitHubAPI
	workspace string
	common    []string // flags every run takes
	tag       string
}

func newGitHubBed(t *testing.T) *githubBed {
	t.Helper()
	reg := testbed.StartRegistry(t)
	testbed.PushImage(t, testbed.BusyboxImage(t), reg.Ref("base/busybox:1"))
	root := t.TempDir()
	ws := filepath.Join(root, "workspace")
	var conf strings.Builder
	conf.WriteString("[aws]\n")
	for i := range secretRows {
		fmt.Fprintf(&conf, "key_%02d = AKIAZ3MSHIPDEM%02dKEY7\n", i, i)
	}
	writeTree(t, ws, map[string]file{
		"app/Dockerfile": txt("FROM " + reg.Ref("base/busybox:1") + "\n" +
			"WORKDIR /app\n" +
			"COPY requirements.txt settings.conf /app/\n" +
			"CMD [\"cat\", \"/app/requirements.txt\"]\n"),
		"app/requirements.txt": txt("# app dependencies\nflask-ship-none==0.1\nshipreq==1.5.0\n"),
		"app/settings.conf":    txt(conf.String()),
	})
	cache := filepath.Join(root, "cache")
	testbed.FixtureDB(t, cache)
	return &githubBed{
		api:       testbed.NewGitHubAPI(t),
		workspace: ws,
		tag:       reg.Ref("gh/app:1"),
		common: []string{"--context", filepath.Join(ws, "app"), "--scan", "--cache-dir", cache, "--skip-db-update",
			"--db-repository", "127.0.0.1:1/none/trivy-db:2", "--insecure-registry", reg.Host},
	}
}

// githubRun is one ship run as a GitHub job step.
type githubRun struct {
	shipResult
	summary string            // $GITHUB_STEP_SUMMARY
	outputs map[string]string // $GITHUB_OUTPUT
	sarif   []byte            // the sarif-file
}

// run runs ship as the action does on event ("pull_request" or "push"),
// with the inputs as INPUT_* variables.
func (b *githubBed) run(t *testing.T, ctx context.Context, event string, inputs map[string]string, args ...string) githubRun {
	t.Helper()
	job := t.TempDir()
	payload := map[string]any{"after": pushSHA, "ref": "refs/heads/main"}
	ref, sha := "refs/heads/main", pushSHA
	if event == "pull_request" {
		payload = map[string]any{
			"action": "synchronize", "number": prNumber,
			"pull_request": map[string]any{
				"number": prNumber,
				"head":   map[string]any{"sha": prHeadSHA, "ref": "feature"},
				"base":   map[string]any{"sha": pushSHA, "ref": "main"},
			},
		}
		ref, sha = fmt.Sprintf("refs/pull/%d/merge", prNumber), prMergeSHA
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	eventPath, outPath, sumPath := filepath.Join(job, "event.json"), filepath.Join(job, "output"), filepath.Join(job, "summary")
	for p, data := range map[string][]byte{eventPath: raw, outPath: nil, sumPath: nil} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sarifPath := filepath.Join(job, "ship.sarif")
	env := []string{
		"GITHUB_ACTIONS=true", "CI=true",
		"GITHUB_EVENT_NAME=" + event, "GITHUB_EVENT_PATH=" + eventPath,
		"GITHUB_SHA=" + sha, "GITHUB_REF=" + ref,
		"GITHUB_REPOSITORY=" + ghRepo, "GITHUB_API_URL=" + b.api.URL,
		"GITHUB_SERVER_URL=https://github.example", "GITHUB_RUN_ID=42",
		"GITHUB_WORKSPACE=" + b.workspace,
		"GITHUB_OUTPUT=" + outPath, "GITHUB_STEP_SUMMARY=" + sumPath,
		"INPUT_GITHUB-TOKEN=ghs_faketoken", "INPUT_TAGS=" + b.tag,
		"INPUT_SARIF-FILE=" + sarifPath, "INPUT_FINDINGS-JSON=" + filepath.Join(job, "findings.json"),
	}
	if event == "pull_request" {
		env = append(env, "GITHUB_BASE_REF=main", "GITHUB_HEAD_REF=feature")
	}
	for k, v := range inputs {
		env = append(env, "INPUT_"+strings.ToUpper(k)+"="+v)
	}
	res := runShipInTemp(t, ctx, job, env, append(slices.Clone(b.common), args...)...)
	r := githubRun{shipResult: res, outputs: map[string]string{}}
	r.summary = readText(t, sumPath)
	for _, line := range strings.Split(readText(t, outPath), "\n") {
		// go-githubactions writes name<<DELIMITER, value, DELIMITER.
		if name, _, ok := strings.Cut(line, "<<"); ok {
			r.outputs[name] = ""
		}
	}
	if data, err := os.ReadFile(sarifPath); err == nil {
		r.sarif = data
	}
	// GitHub masks the token: ::add-mask:: is the one place it may be.
	if strings.Contains(strings.ReplaceAll(res.Stdout, "::add-mask::ghs_faketoken", "")+res.Stderr+r.summary, "ghs_faketoken") {
		t.Error("the token is in ship's output")
	}
	return r
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGitHubPullRequest runs ship twice on a pull request event against
// the fake GitHub API: the check run is on the head commit with every
// finding annotated in batches of at most 50, the pull request has one
// comment (updated, not duplicated, by the second run), the SARIF log is
// valid and uploaded for the pull request's head, and the job summary and
// outputs are written.
func TestGitHubPullRequest(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b := newGitHubBed(t)
	inputs := map[string]string{"upload-sarif": "true", "fail-on": "CRITICAL"}

	first := b.run(t, ctx, "pull_request", inputs, "--push")
	if first.Code != 1 || !strings.Contains(first.errorLine(), "(fail-on)") {
		t.Fatalf("want the gate to fail the run (exit 1): %s", first)
	}
	runs := b.api.CheckRuns()
	if len(runs) != 1 {
		t.Fatalf("%d check runs, want 1: %+v", len(runs), b.api.Calls())
	}
	run := runs[0]
	if run.HeadSHA != prHeadSHA || run.Status != "completed" || run.Conclusion != "failure" || run.Name != "ship / "+strings.TrimSuffix(b.tag, ":1") {
		t.Errorf("check run %q on %s: %s/%s, want on the head %s, completed/failure", run.Name, run.HeadSHA, run.Status, run.Conclusion, prHeadSHA)
	}
	// A secret per line of settings.conf, the CVE in requirements.txt.
	if want := secretRows + 1; len(run.Annotations) != want {
		t.Errorf("%d annotations, want %d", len(run.Annotations), want)
	}
	for _, n := range run.AnnotationBatches {
		if n > 50 {
			t.Errorf("a request carried %d annotations (batches %v)", n, run.AnnotationBatches)
		}
	}
	if run.PatchesAfterCompletion > 0 {
		t.Errorf("%d PATCHes after the run was completed", run.PatchesAfterCompletion)
	}
	paths := map[string]bool{}
	for _, a := range run.Annotations {
		paths[fmt.Sprint(a["path"])+":"+fmt.Sprint(a["start_line"])] = true
	}
	for _, p := range []string{"app/requirements.txt:3", "app/settings.conf:2", fmt.Sprintf("app/settings.conf:%d", secretRows+1)} {
		if !paths[p] {
			t.Errorf("no annotation at %s (repository path)", p)
		}
	}
	if strings.Contains(run.Summary, "AKIAZ3MSHIPDEM") || strings.Contains(fmt.Sprint(run.Annotations), "AKIAZ3MSHIPDEM") {
		t.Error("a secret's value is in the check run")
	}

	comments := b.api.Comments(prNumber)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, "CVE-2099-0003") {
		t.Fatalf("comments on the pull request: %+v, want one with the findings", comments)
	}
	sarifs := b.api.SARIFs()
	if len(sarifs) != 1 || sarifs[0].CommitSHA != prHeadSHA || sarifs[0].Ref != fmt.Sprintf("refs/pull/%d/head", prNumber) {
		t.Fatalf("SARIF uploads %+v, want one for the head commit", sarifs)
	}
	testbed.ValidateJSON(t, "sarif-2.1.0.schema.json", sarifs[0].SARIF)
	testbed.ValidateJSON(t, "sarif-2.1.0.schema.json", first.sarif)
	if !strings.Contains(string(first.sarif), `"uri": "app/requirements.txt"`) && !strings.Contains(string(first.sarif), `"uri":"app/requirements.txt"`) {
		t.Errorf("SARIF results are not located in repository files:\n%.2000s", first.sarif)
	}
	if !strings.Contains(first.summary, "CVE-2099-0003") || !strings.Contains(first.summary, "| **Digest** |") {
		t.Errorf("job summary:\n%s", first.summary)
	}
	for _, o := range []string{"digest", "image", "critical", "sarif-file"} {
		if _, ok := first.outputs[o]; !ok {
			t.Errorf("no step output %s: %v", o, first.outputs)
		}
	}

	// The next push to the pull request: the same comment, updated.
	second := b.run(t, ctx, "pull_request", map[string]string{"comment": "true"})
	if second.Code != 0 {
		t.Fatalf("report-only run: %s", second)
	}
	updated := b.api.Comments(prNumber)
	if len(updated) != 1 || updated[0].ID != comments[0].ID {
		t.Fatalf("comments after the second run: %+v, want the first one updated", updated)
	}
	if updated[0].Body == comments[0].Body {
		t.Error("the comment was not updated (the second run is report only, the first failed)")
	}
	if runs := b.api.CheckRuns(); len(runs) != 2 || runs[1].Conclusion != "neutral" {
		t.Errorf("check runs after the second run: %+v, want a second one, neutral (report only)", runs)
	}
}

// TestGitHubPush: on a push event the check run is on the pushed commit
// and no pull request is commented.
func TestGitHubPush(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b := newGitHubBed(t)
	res := b.run(t, ctx, "push", nil)
	if res.Code != 0 {
		t.Fatalf("%s", res)
	}
	runs := b.api.CheckRuns()
	if len(runs) != 1 || runs[0].HeadSHA != pushSHA || runs[0].Conclusion != "neutral" {
		t.Fatalf("check runs %+v, want one on %s, neutral", runs, pushSHA)
	}
	for _, c := range b.api.Calls() {
		if strings.Contains(c.Path, "/issues/") || strings.Contains(c.Path, "/code-scanning/") {
			t.Errorf("unexpected call on a push without upload-sarif: %s %s", c.Method, c.Path)
		}
	}
}

// TestGitHubFork: a pull request from a fork has a read-only token. ship
// warns once per missing permission, naming it, falls back to
// workflow-command annotations (most severe first, at most 10 per level,
// then a notice counting the rest) and still writes the job summary; the
// run succeeds unless fail-on-report-error is set.
func TestGitHubFork(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b := newGitHubBed(t)
	b.api.Inject("POST", `/check-runs$`, testbed.FaultFork, 10)
	b.api.Inject("GET", `/comments$`, testbed.FaultFork, 10)
	b.api.Inject("POST", `/comments$`, testbed.FaultFork, 10)
	b.api.Inject("POST", `/code-scanning/sarifs$`, testbed.FaultFork, 10)

	res := b.run(t, ctx, "pull_request", map[string]string{"upload-sarif": "true"})
	if res.Code != 0 {
		t.Fatalf("reporting problems failed the run: %s", res)
	}
	for _, perm := range []string{"checks: write", "pull-requests: write", "security-events: write"} {
		if n := strings.Count(res.Stderr, perm); n != 1 {
			t.Errorf("%q named %d times in the log, want one warning:\n%s", perm, n, res.Stderr)
		}
	}
	errs := strings.Count(res.Stdout, "::error file=")
	if errs == 0 || errs > 10 {
		t.Errorf("%d ::error workflow commands, want 1..10:\n%s", errs, res.Stdout)
	}
	if !strings.Contains(res.Stdout, "::error file=app/requirements.txt,line=3") {
		t.Errorf("no workflow-command annotation at app/requirements.txt:3:\n%s", res.Stdout)
	}
	if !strings.Contains(res.Stdout, "::notice") {
		t.Errorf("no notice counting the annotations left out:\n%s", res.Stdout)
	}
	if !strings.Contains(res.summary, "CVE-2099-0003") {
		t.Errorf("job summary:\n%s", res.summary)
	}

	strict := b.run(t, ctx, "pull_request", map[string]string{"fail-on-report-error": "true"})
	if strict.Code != 1 || !strings.Contains(strict.errorLine(), "fail-on-report-error") {
		t.Errorf("with fail-on-report-error: %s", strict)
	}
}

// TestGitHubAPIDown: when every API call fails, the job summary is still
// written, the run's result is unchanged, and a build failure is annotated
// at its Dockerfile line (here as a workflow command).
func TestGitHubAPIDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b := newGitHubBed(t)
	for _, m := range []string{"GET", "POST", "PATCH"} {
		b.api.Inject(m, `.`, testbed.FaultNotFound, 100)
	}
	df := filepath.Join(b.workspace, "app", "Dockerfile")
	orig := readText(t, df)
	if err := os.WriteFile(df, []byte(strings.Replace(orig, "COPY requirements.txt", "COPY missing.txt requirements.txt", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := b.run(t, ctx, "pull_request", nil)
	if res.Code != 3 || !strings.Contains(res.errorLine(), "Dockerfile:3") {
		t.Fatalf("want the build failure (exit 3, Dockerfile:3): %s", res)
	}
	if !strings.Contains(res.summary, "Dockerfile:3") {
		t.Errorf("job summary has no build failure at Dockerfile:3:\n%s", res.summary)
	}
	if !strings.Contains(res.Stdout, "::error file=app/Dockerfile,line=3") {
		t.Errorf("no workflow-command annotation of the build failure:\n%s", res.Stdout)
	}
}
