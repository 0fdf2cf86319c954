package action

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/build"
	"github.com/intesys/ship-action/internal/dockerfile"
	"github.com/intesys/ship-action/internal/report/gitlab"
	"github.com/intesys/ship-action/internal/testbed"
)

// update rewrites the golden files of this package's tests.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The GitLab project and merge request of these tests.
const (
	glToken   = "glpat-ship-test-0123456789"
	glProject = "4242"
	glMR      = 7
	glJobURL  = "https://gitlab.example.com/group/app/-/jobs/99"
)

// gitlabBed is a scanBed in a GitLab merge request pipeline (the variables
// GitLab sets), with a fake GitLab API for the note. The tags are in the
// repository whose main tag scanBed's client serves, so compare-to finds
// the target branch's image.
type gitlabBed struct {
	*scanBed
	api      *testbed.GitLabAPI
	buildErr error
}

func newGitLabBed(t *testing.T) *gitlabBed {
	t.Helper()
	b := &gitlabBed{scanBed: newScanBed(t), api: testbed.NewGitLabAPI(t, glProject, glToken)}
	b.cfg.Tags = []string{"registry.example/app:0123abc", "registry.example/app:feature-x"}
	b.cfg.Push = true
	b.cfg.Output = ""
	b.cfg.GitLabToken = glToken
	for k, v := range map[string]string{
		"CI":                                  "true",
		"GITLAB_CI":                           "true",
		"CI_SERVER_URL":                       "https://gitlab.example.com",
		"CI_API_V4_URL":                       b.api.URL,
		"CI_PROJECT_ID":                       glProject,
		"CI_PROJECT_PATH":                     "group/app",
		"CI_PROJECT_DIR":                      b.cfg.Context,
		"CI_JOB_URL":                          glJobURL,
		"CI_JOB_TOKEN":                        "job-token-cannot-write-notes",
		"CI_COMMIT_SHA":                       "0123abc0123abc0123abc0123abc0123abc0123a",
		"CI_COMMIT_REF_SLUG":                  "feature-x",
		"CI_DEFAULT_BRANCH":                   "main",
		"CI_PIPELINE_SOURCE":                  "merge_request_event",
		"CI_MERGE_REQUEST_IID":                "7",
		"CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
		"CI_REGISTRY":                         "registry.example",
		"CI_REGISTRY_IMAGE":                   "registry.example/app",
	} {
		b.env[k] = v
	}
	return b
}

// run runs ship as the GitLab job would; the build fails with buildErr
// when set.
func (b *gitlabBed) run() error {
	b.stdout.Reset()
	b.logs.Reset()
	b.stderr.Reset()
	infos := b.infos
	builder := func(ctx context.Context, req build.Request, _ ...build.Option) (*build.Result, error) {
		if b.buildErr != nil {
			return nil, b.buildErr
		}
		return &build.Result{Image: b.img, Layers: infos}, nil
	}
	return Run(b.ctx, b.cfg,
		WithEnv(envOf(b.env)),
		WithStdout(&b.stdout),
		WithLogger(slog.New(slog.NewTextHandler(&b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		withStderr(&b.stderr),
		withWorkDir(b.work()),
		withTempDir(b.tempBase),
		withBuilder(builder),
		withClient(b.client),
	)
}

func (b *gitlabBed) work() string { return filepath.Join(b.dir, "work") }

// logLines returns the log lines at level (INFO, WARN...) that contain s.
func (b *gitlabBed) logLines(level, s string) []string {
	var out []string
	for _, l := range strings.Split(b.logs.String(), "\n") {
		if strings.Contains(l, "level="+level) && strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// golden compares got with testdata/gitlab/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "gitlab", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (run go test -update and review the diff):\n%s", name, path, got)
	}
}

// The parts of the container scanning report that change between runs:
// the scan's times and ship's version.
var (
	reportTimes   = regexp.MustCompile(`"(start|end)_time": "[0-9T:-]+"`)
	analyzerBlock = regexp.MustCompile(`("id": "ship",[^}]*?"version": )"[^"]*"`)
)

// stableReport replaces the times and ship's version of a container
// scanning report.
func stableReport(b []byte) []byte {
	b = reportTimes.ReplaceAll(b, []byte(`"${1}_time": "<time>"`))
	return analyzerBlock.ReplaceAll(b, []byte(`${1}"<version>"`))
}

// validCodeQuality validates a code quality report against both schemas
// and returns its entries as "check_name|severity|path:line".
func validCodeQuality(t *testing.T, data []byte) []string {
	t.Helper()
	testbed.ValidateJSON(t, "gitlab-codequality-report.schema.json", data)
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("code quality report is not a JSON array: %v", err)
	}
	var out []string
	for _, r := range raw {
		testbed.ValidateJSON(t, "gitlab-codequality-issue.schema.json", r)
		var is struct {
			CheckName string `json:"check_name"`
			Severity  string
			Location  struct {
				Path  string
				Lines struct{ Begin int }
			}
		}
		if err := json.Unmarshal(r, &is); err != nil {
			t.Fatal(err)
		}
		out = append(out, is.CheckName+"|"+is.Severity+"|"+is.Location.Path+":"+strconv.Itoa(is.Location.Lines.Begin))
	}
	return out
}

// TestGitLabReports runs a scanned build twice in a merge request
// pipeline: the container scanning and code quality reports are written
// and valid, the note is created, then updated in place.
func TestGitLabReports(t *testing.T) {
	t.Parallel()
	b := newGitLabBed(t)
	if err := b.run(); err != nil {
		t.Fatalf("run: %v\nlogs:\n%s", err, b.logs.String())
	}

	cs := []byte(readFile(t, filepath.Join(b.work(), containerScanningFile)))
	testbed.ValidateJSON(t, "gitlab-container-scanning-report-format.schema.json", cs)
	var rep struct {
		Version string
		Scan    struct {
			Scanner struct{ Version string }
		}
		Vulnerabilities []struct {
			Identifiers []struct{ Value string }
			Location    struct {
				Image              string
				DefaultBranchImage string `json:"default_branch_image"`
				OperatingSystem    string `json:"operating_system"`
			}
		}
	}
	if err := json.Unmarshal(cs, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Version != gitlab.SchemaVersion || len(rep.Vulnerabilities) != 2 {
		t.Fatalf("version %s, %d vulnerabilities, want %s and 2 (the secret has no package):\n%s", rep.Version, len(rep.Vulnerabilities), gitlab.SchemaVersion, cs)
	}
	// A test binary lists no modules: the e2e test checks the version.
	if _, trivy := buildVersions(); rep.Scan.Scanner.Version != cmp.Or(trivy, "unknown") {
		t.Errorf("scanner version %q, want Trivy's module version %q", rep.Scan.Scanner.Version, trivy)
	}
	for _, v := range rep.Vulnerabilities {
		l := v.Location
		if l.Image != "registry.example/app:0123abc" || l.DefaultBranchImage != "registry.example/app:main" || !strings.HasPrefix(l.OperatingSystem, "debian") {
			t.Errorf("location %+v: want the first tag, the main branch's image compared to, debian", l)
		}
	}
	golden(t, containerScanningFile, stableReport(cs))

	cq := []byte(readFile(t, filepath.Join(b.work(), codeQualityFile)))
	want := []string{"aws-access-key-id|critical|src/settings.conf:2", "CVE-2099-0003|critical|src/requirements.txt:3", "CVE-2099-0001|major|Dockerfile:1"}
	if got := validCodeQuality(t, cq); !slices.Equal(got, want) {
		t.Errorf("code quality entries\n got %q\nwant %q", got, want)
	}
	golden(t, codeQualityFile, cq)

	if _, err := os.Stat(filepath.Join(b.work(), gitlabSBOMFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s written without sbom: %v", gitlabSBOMFile, err)
	}
	if env := readFile(t, filepath.Join(b.work(), dotenvFile)); !strings.Contains(env, "SHIP_IMAGE=registry.example/app@"+b.digest.String()) {
		t.Errorf("ship.env:\n%s", env)
	}

	notes := b.api.Notes(glMR)
	if len(notes) != 1 {
		t.Fatalf("%d notes, want 1", len(notes))
	}
	if !strings.HasPrefix(notes[0].Body, "<!-- ship:image=registry.example/app -->") || !strings.Contains(notes[0].Body, glJobURL) {
		t.Errorf("note does not open with the image's marker or lacks the job's URL:\n%s", notes[0].Body)
	}
	golden(t, "note.md", []byte(notes[0].Body))
	if got := b.logLines("INFO", "merge request note written"); len(got) != 1 {
		t.Errorf("log lines about the note: %q", got)
	}
	for _, c := range b.api.Calls() {
		if c.Header.Get("PRIVATE-TOKEN") != glToken {
			t.Errorf("%s %s sent PRIVATE-TOKEN %q", c.Method, c.Path, c.Header.Get("PRIVATE-TOKEN"))
		}
	}
	if all := b.stdout.String() + b.logs.String() + b.stderr.String(); strings.Contains(all, glToken) {
		t.Error("the GitLab token is in ship's output")
	}

	// The next pipeline of the merge request updates the note.
	if err := b.run(); err != nil {
		t.Fatalf("second run: %v", err)
	}
	var methods []string
	for _, c := range b.api.Calls() {
		methods = append(methods, c.Method)
	}
	if got := strings.Join(methods, " "); got != "GET POST GET PUT" {
		t.Errorf("API calls %q, want GET POST (create) then GET PUT (update)", got)
	}
	if after := b.api.Notes(glMR); len(after) != 1 || after[0].ID != notes[0].ID || after[0].Body != notes[0].Body {
		t.Errorf("notes after the second run: %+v, want note %d unchanged in place", after, notes[0].ID)
	}
}

// TestGitLabNoteRefused checks that a token GitLab refuses gives one
// warning naming the fix, and fails the run only with
// fail-on-report-error.
func TestGitLabNoteRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name         string
		status       int // injected; 0: the token is wrong (401)
		failOnReport bool
		wantCode     int
		wantWarning  string
	}{
		{name: "401", wantWarning: "invalid, expired or revoked"},
		{name: "403", status: http.StatusForbidden, wantWarning: "api scope and at least the Reporter role"},
		{name: "404", status: http.StatusNotFound, wantWarning: "not visible to gitlab-token"},
		{name: "403 fail-on-report-error", status: http.StatusForbidden, failOnReport: true, wantCode: CodeInternal, wantWarning: "Reporter role"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newGitLabBed(t)
			b.cfg.FailOnReportError = tt.failOnReport
			if tt.status == 0 {
				b.cfg.GitLabToken = "glpat-revoked"
			} else {
				b.api.Fail(testbed.GitLabFault{Status: tt.status})
			}
			err := b.run()
			if got := ExitCode(err); got != tt.wantCode {
				t.Fatalf("exit code %d (%v), want %d\nlogs:\n%s", got, err, tt.wantCode, b.logs.String())
			}
			if tt.failOnReport && !strings.Contains(err.Error(), "fail-on-report-error") {
				t.Errorf("error %q does not name fail-on-report-error", err)
			}
			warnings := b.logLines("WARN", "GitLab")
			if len(warnings) != 1 || !strings.Contains(warnings[0], "merge request note skipped") || !strings.Contains(warnings[0], tt.wantWarning) {
				t.Errorf("warnings %q, want one about the note with %q", warnings, tt.wantWarning)
			}
			if len(b.api.Notes(glMR)) != 0 || len(b.api.Calls()) != 1 {
				t.Errorf("%d notes after %d calls, want none after one", len(b.api.Notes(glMR)), len(b.api.Calls()))
			}
			// The reports do not depend on the note.
			for _, f := range []string{containerScanningFile, codeQualityFile, dotenvFile} {
				if _, err := os.Stat(filepath.Join(b.work(), f)); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
		})
	}
}

// TestGitLabNoteWhen checks when a note is written: never without a token
// (one line says how to have one), outside a merge request, or against
// the comment input.
func TestGitLabNoteWhen(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		setup    func(t *testing.T, b *gitlabBed)
		wantCode int
		wantNote bool
		wantInfo string // a line logged once
	}{
		{name: "no token", setup: func(t *testing.T, b *gitlabBed) { b.cfg.GitLabToken = "" }, wantInfo: "no gitlab-token: no merge request note; to have one, set gitlab-token"},
		{name: "branch pipeline", setup: func(t *testing.T, b *gitlabBed) {
			delete(b.env, "CI_MERGE_REQUEST_IID")
			delete(b.env, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
		}},
		{name: "comment false", setup: func(t *testing.T, b *gitlabBed) { b.cfg.Comment = commentNever }},
		{name: "on-failure, report only", setup: func(t *testing.T, b *gitlabBed) { b.cfg.Comment = commentOnFailure }},
		{name: "on-failure, gate fails", setup: func(t *testing.T, b *gitlabBed) {
			b.cfg.Comment = commentOnFailure
			b.cfg.FailOn = []string{"CRITICAL"}
		}, wantCode: CodeGate, wantNote: true, wantInfo: "merge request note written"},
		{name: "token from SHIP_GITLAB_TOKEN", setup: func(t *testing.T, b *gitlabBed) {
			cfg, err := Load([]string{"--context", b.cfg.Context}, envOf(map[string]string{"SHIP_GITLAB_TOKEN": glToken}))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(cfg.secrets(), glToken) {
				t.Error("gitlab-token is not a secret")
			}
			b.cfg.GitLabToken = cfg.GitLabToken
		}, wantNote: true, wantInfo: "merge request note written"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newGitLabBed(t)
			tt.setup(t, b)
			err := b.run()
			if got := ExitCode(err); got != tt.wantCode {
				t.Fatalf("exit code %d (%v), want %d\nlogs:\n%s", got, err, tt.wantCode, b.logs.String())
			}
			if got := len(b.api.Notes(glMR)); got != map[bool]int{true: 1}[tt.wantNote] {
				t.Errorf("%d notes, want note: %v", got, tt.wantNote)
			}
			if !tt.wantNote && len(b.api.Calls()) != 0 {
				t.Errorf("%d API calls, want none", len(b.api.Calls()))
			}
			if tt.wantInfo != "" {
				if got := b.logLines("INFO", tt.wantInfo); len(got) != 1 {
					t.Errorf("log lines with %q: %q\nlogs:\n%s", tt.wantInfo, got, b.logs.String())
				}
			}
			if w := b.logLines("WARN", "GitLab"); len(w) != 0 {
				t.Errorf("warnings: %q", w)
			}
		})
	}
}

// TestGitLabBuildFailure checks that a build failing at a Dockerfile line
// gives a code quality entry at that line, no container scanning report,
// and a note saying so.
func TestGitLabBuildFailure(t *testing.T) {
	t.Parallel()
	b := newGitLabBed(t)
	b.buildErr = &dockerfile.Error{
		Location: dockerfile.Location{File: "Dockerfile", Line: 3, EndLine: 3},
		Err:      errors.New("RUN exited with 1 (last output line: make: *** [all] Error 1)"),
	}
	err := b.run()
	if got := ExitCode(err); got != CodeBuild {
		t.Fatalf("exit code %d (%v), want %d", got, err, CodeBuild)
	}
	cq := []byte(readFile(t, filepath.Join(b.work(), codeQualityFile)))
	if got, want := validCodeQuality(t, cq), []string{gitlab.BuildFailureCheck + "|blocker|Dockerfile:3"}; !slices.Equal(got, want) {
		t.Errorf("code quality entries %q, want %q", got, want)
	}
	golden(t, "build-failure."+codeQualityFile, cq)
	for _, f := range []string{containerScanningFile, dotenvFile} {
		if _, err := os.Stat(filepath.Join(b.work(), f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after a failed build: %v", f, err)
		}
	}
	notes := b.api.Notes(glMR)
	if len(notes) != 1 || !strings.Contains(notes[0].Body, "Dockerfile:3") {
		t.Errorf("notes %+v, want one naming Dockerfile:3", notes)
	}

	// Without a line (a push that fails) there is no code quality report.
	b2 := newGitLabBed(t)
	b2.buildErr = errors.New("pulling base: connection refused")
	if err := b2.run(); ExitCode(err) != CodeBuild {
		t.Fatalf("exit code %d (%v), want %d", ExitCode(err), err, CodeBuild)
	}
	if _, err := os.Stat(filepath.Join(b2.work(), codeQualityFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("code quality report for a failure without a line: %v", err)
	}
}

// TestGitLabSBOM checks that a CycloneDX SBOM is also written as
// gl-sbom-report.cdx.json (artifacts:reports:cyclonedx), and an SPDX one
// is not.
func TestGitLabSBOM(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		format, file string
		want         bool
	}{
		{"cyclonedx", "ship-sbom.cdx.json", true},
		{"cyclonedx", gitlabSBOMFile, true}, // sbom-file names it: nothing to copy
		{"spdx", "ship-sbom.spdx.json", false},
	} {
		t.Run(tt.format+" "+tt.file, func(t *testing.T) {
			t.Parallel()
			b := newGitLabBed(t)
			b.cfg.SBOM = tt.format
			b.cfg.SBOMFile = filepath.Join(b.work(), tt.file)
			if err := b.run(); err != nil {
				t.Fatalf("run: %v", err)
			}
			got, err := os.ReadFile(filepath.Join(b.work(), gitlabSBOMFile))
			if !tt.want {
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s written for %s: %v", gitlabSBOMFile, tt.format, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != readFile(t, b.cfg.SBOMFile) || !bytes.Contains(got, []byte(`"bomFormat": "CycloneDX"`)) {
				t.Errorf("%s is not the CycloneDX SBOM:\n%.300s", gitlabSBOMFile, got)
			}
		})
	}
}

func TestGitLabSections(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	s := newGitLabSections(func(k string) string { return map[string]string{"GITLAB_CI": "true"}[k] }, &buf)
	clock := time.Unix(1764200000, 0)
	s.now = func() time.Time { clock = clock.Add(2 * time.Second); return clock }
	end := s.start("push scan", "Pushing and\nscanning registry.example/app:1")
	buf.WriteString("level=INFO msg=pushing\n")
	end()
	end() // closes once
	want := "\x1b[0Ksection_start:1764200002:ship_push_scan[collapsed=true]\r\x1b[0KPushing and scanning registry.example/app:1\n" +
		"level=INFO msg=pushing\n" +
		"\x1b[0Ksection_end:1764200004:ship_push_scan\r\x1b[0K\n"
	if buf.String() != want {
		t.Errorf("sections\n got %q\nwant %q", buf.String(), want)
	}

	buf.Reset()
	off := newGitLabSections(func(k string) string { return map[string]string{"GITHUB_ACTIONS": "true"}[k] }, &buf)
	off.start("build", "Building")()
	if buf.Len() != 0 {
		t.Errorf("sections written off GitLab: %q", buf.String())
	}
}

// TestGitLabLogSections checks that each phase of a run is a collapsible
// section of the job log, and that a push and a scan running together
// share one.
func TestGitLabLogSections(t *testing.T) {
	t.Parallel()
	marker := regexp.MustCompile(`\x1b\[0Ksection_(start|end):[0-9]+:(ship_[a-z_]+)`)
	for _, tt := range []struct {
		name  string
		setup func(b *gitlabBed)
		want  string
	}{
		{name: "scan while pushing", want: "start ship_build,end ship_build,start ship_push_scan,end ship_push_scan,start ship_report,end ship_report"},
		{name: "scan before push", setup: func(b *gitlabBed) { b.cfg.ScanBeforePush = true },
			want: "start ship_build,end ship_build,start ship_scan,end ship_scan,start ship_push,end ship_push,start ship_report,end ship_report"},
		{name: "build fails", setup: func(b *gitlabBed) { b.buildErr = errors.New("pulling base: refused") },
			want: "start ship_build,end ship_build,start ship_report,end ship_report"},
		{name: "off GitLab", setup: func(b *gitlabBed) { delete(b.env, "GITLAB_CI") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newGitLabBed(t)
			if tt.setup != nil {
				tt.setup(b)
			}
			_ = b.run()
			var got []string
			for _, m := range marker.FindAllStringSubmatch(b.stderr.String(), -1) {
				got = append(got, m[1]+" "+m[2])
			}
			if strings.Join(got, ",") != tt.want {
				t.Errorf("sections\n got %s\nwant %s", strings.Join(got, ","), tt.want)
			}
		})
	}
}
