package github

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/report/markdown"
	"github.com/intesys/ship-action/internal/report/sarif"
	"github.com/intesys/ship-action/internal/testbed"
)

const testToken = "ghs_test_token"

// sleeps records the waits of the retry policy instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func newTestClient(t *testing.T, f *testbed.GitHubAPI, opts ...Option) (*Client, *sleeps) {
	t.Helper()
	s := &sleeps{}
	c, err := New(context.Background(), append([]Option{
		WithToken(testToken), WithBaseURL(f.URL), WithRepository("acme/app"),
		withBackoff(10*time.Millisecond, 5*time.Second, s.sleep),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func vuln(id string, sev findings.Severity, path string, line int) findings.Finding {
	return findings.Finding{
		ID: id, Kind: findings.KindVulnerability, Severity: sev,
		Package: "openssl", InstalledVersion: "3.0.1", FixedVersion: "3.0.2",
		Title: "openssl: overflow", PrimaryURL: "https://avd.aquasec.com/nvd/" + strings.ToLower(id),
		Origin: findings.OriginBuild, Instruction: "RUN apt-get install -y openssl",
		Location: findings.Location{Path: path, Line: line},
	}
}

// lineFindings returns n findings, each on its own Dockerfile line.
func lineFindings(n int) []findings.Finding {
	var out []findings.Finding
	for i := range n {
		out = append(out, vuln(fmt.Sprintf("CVE-2024-%04d", i), findings.Severities()[i%5], "Dockerfile", i+1))
	}
	return out
}

func TestHeadSHA(t *testing.T) {
	t.Parallel()
	const head, merge, after = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222", "3333333333333333333333333333333333333333"
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		wantSHA string
		wantPR  int
		wantErr bool
	}{
		{name: "pull_request", path: write("pr.json", `{"action":"synchronize","number":7,"pull_request":{"number":7,"head":{"sha":"`+head+`","ref":"feature"},"base":{"sha":"x"}}}`), wantSHA: head, wantPR: 7},
		{name: "pull_request_target without inner number", path: write("prt.json", `{"number":9,"pull_request":{"head":{"sha":"`+head+`"}}}`), wantSHA: head, wantPR: 9},
		{name: "push", path: write("push.json", `{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"`+after+`"}`), wantSHA: after},
		{name: "push deleting a branch", path: write("del.json", `{"ref":"refs/heads/x","after":"0000000000000000000000000000000000000000"}`), wantSHA: merge},
		{name: "workflow_dispatch", path: write("wd.json", `{"inputs":{},"ref":"refs/heads/main"}`), wantSHA: merge},
		{name: "no event path", path: "", wantSHA: merge},
		{name: "invalid json", path: write("bad.json", `{"pull_request":`), wantErr: true},
		{name: "missing file", path: filepath.Join(dir, "missing.json"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sha, pr, err := HeadSHA(tt.path, merge)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if sha != tt.wantSHA || pr != tt.wantPR {
				t.Errorf("HeadSHA = %s, %d; want %s, %d", sha, pr, tt.wantSHA, tt.wantPR)
			}
		})
	}
}

func TestCheckRun(t *testing.T) {
	t.Parallel()
	const sha = "1111111111111111111111111111111111111111"
	tests := []struct {
		name        string
		annotations int
		max         int
		wantBatches []int
		wantNote    string
		conclusion  Conclusion
	}{
		{name: "no annotations", annotations: 0, max: 200, wantBatches: []int{0}, conclusion: ConclusionSuccess},
		{name: "exactly one batch", annotations: 50, max: 200, wantBatches: []int{50}, conclusion: ConclusionFailure},
		{name: "one more than a batch", annotations: 51, max: 200, wantBatches: []int{50, 1}, conclusion: ConclusionFailure},
		{name: "capped", annotations: 260, max: 120, wantBatches: []int{50, 50, 20}, wantNote: "140 more annotations not shown (max-annotations: 120)", conclusion: ConclusionNeutral},
		{name: "no cap", annotations: 130, max: 0, wantBatches: []int{50, 50, 30}, conclusion: ConclusionFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := testbed.NewGitHubAPI(t)
			c, _ := newTestClient(t, f)
			ctx := context.Background()
			id, err := c.StartCheck(ctx, "ship / ghcr.io/acme/app", sha)
			if err != nil {
				t.Fatal(err)
			}
			anns, skipped := Annotations(lineFindings(tt.annotations), 0)
			if len(anns) != tt.annotations || skipped != 0 {
				t.Fatalf("Annotations: %d annotations, %d skipped; want %d, 0", len(anns), skipped, tt.annotations)
			}
			if err := c.FinishCheck(ctx, id, tt.conclusion, "3 findings", "## Summary\n", anns, tt.max); err != nil {
				t.Fatal(err)
			}
			run, ok := f.CheckRun(id)
			if !ok {
				t.Fatalf("check run %d not created", id)
			}
			if run.HeadSHA != sha || run.Name != "ship / ghcr.io/acme/app" {
				t.Errorf("run on %s named %q", run.HeadSHA, run.Name)
			}
			if run.Status != "completed" || run.Conclusion != string(tt.conclusion) {
				t.Errorf("run %s/%s, want completed/%s", run.Status, run.Conclusion, tt.conclusion)
			}
			if run.PatchesAfterCompletion != 0 {
				t.Errorf("%d updates after completion", run.PatchesAfterCompletion)
			}
			if fmt.Sprint(run.AnnotationBatches) != fmt.Sprint(tt.wantBatches) {
				t.Errorf("annotation batches %v, want %v", run.AnnotationBatches, tt.wantBatches)
			}
			want := len(anns)
			if tt.max > 0 {
				want = min(want, tt.max)
			}
			if len(run.Annotations) != want {
				t.Errorf("%d annotations delivered, want %d", len(run.Annotations), want)
			}
			seen := map[float64]bool{}
			for _, a := range run.Annotations {
				seen[a["start_line"].(float64)] = true
			}
			if len(seen) != want {
				t.Errorf("%d distinct lines delivered, want %d (duplicates or losses)", len(seen), want)
			}
			if tt.wantNote != "" && !strings.Contains(run.Summary, tt.wantNote) {
				t.Errorf("summary %q lacks %q", run.Summary, tt.wantNote)
			}
			if tt.wantNote == "" && strings.Contains(run.Summary, "not shown") {
				t.Errorf("summary %q says something was left out", run.Summary)
			}
			for _, call := range f.Calls() {
				if got := call.Header.Get("Authorization"); got != "Bearer "+testToken {
					t.Errorf("%s %s: Authorization %q", call.Method, call.Path, got)
				}
				if call.Method == "PATCH" && bytes.Contains(call.Body, []byte(`"name"`)) {
					t.Errorf("PATCH renames the run: %s", call.Body)
				}
			}
		})
	}
}

func TestFinishCheckTruncatesSummary(t *testing.T) {
	t.Parallel()
	f := testbed.NewGitHubAPI(t)
	c, _ := newTestClient(t, f)
	ctx := context.Background()
	id, err := c.StartCheck(ctx, "ship", "1111111111111111111111111111111111111111")
	if err != nil {
		t.Fatal(err)
	}
	summary := strings.Repeat("| a | b | c |\n", 10_000) // 140,000 bytes
	anns, _ := Annotations(lineFindings(60), 0)
	if err := c.FinishCheck(ctx, id, ConclusionFailure, "t", summary, anns, 55); err != nil {
		t.Fatal(err) // the fake rejects (422) a summary over maxLength
	}
	run, _ := f.CheckRun(id)
	if len(run.Summary) > MaxSummary {
		t.Errorf("summary has %d bytes", len(run.Summary))
	}
	for _, want := range []string{"| a | b | c |\n_The summary was cut", "5 more annotations not shown"} {
		if !strings.Contains(run.Summary, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
}

func TestAnnotations(t *testing.T) {
	t.Parallel()
	grouped := []findings.Finding{
		vuln("CVE-2024-0001", findings.SeverityLow, "Dockerfile", 3),
		vuln("CVE-2024-0002", findings.SeverityHigh, "Dockerfile", 3),
		vuln("CVE-2024-0003", findings.SeverityMedium, "Dockerfile", 3),
	}
	base := vuln("CVE-2024-0009", findings.SeverityMedium, "Dockerfile", 1)
	base.Origin, base.Instruction, base.FixedVersion = findings.OriginBase, "", ""
	secret := findings.Finding{ID: "aws-access-key-id", Kind: findings.KindSecret, Severity: findings.SeverityCritical,
		Title: "AWS Access Key ID", Path: "app/.env", Origin: findings.OriginBuild, Instruction: "COPY . /app",
		Location: findings.Location{Path: ".env", Line: 2}}
	unlocated := vuln("CVE-2024-0100", findings.SeverityCritical, "", 0)
	fixed := vuln("CVE-2024-0200", findings.SeverityCritical, "Dockerfile", 4)
	fixed.Status = findings.StatusFixed
	noLine := vuln("CVE-2024-0300", findings.SeverityUnknown, "requirements.txt", 0)
	long := make([]findings.Finding, 0, 40)
	for i := range 40 {
		long = append(long, vuln(fmt.Sprintf("CVE-2024-%04d", 1000+i), findings.SeverityHigh, "Dockerfile", 9))
	}

	tests := []struct {
		name        string
		in          []findings.Finding
		max         int
		wantTitles  []string
		wantLevels  []Level
		wantSkipped int
		check       func(t *testing.T, anns []Annotation)
	}{
		{
			name:       "one line, three findings grouped, level of the most severe",
			in:         grouped,
			wantTitles: []string{"3 findings: CVE-2024-0002 in openssl 3.0.1 (fixed in 3.0.2); CVE-2024-0003 in openssl 3.0.1 (fixed in 3.0.2); CVE-2024-0001 in openssl 3.0.1 (fixed in 3.0.2)"},
			wantLevels: []Level{LevelFailure},
			check: func(t *testing.T, anns []Annotation) {
				a := anns[0]
				if a.Path != "Dockerfile" || a.StartLine != 3 || a.EndLine != 3 {
					t.Errorf("at %s:%d-%d", a.Path, a.StartLine, a.EndLine)
				}
				for _, w := range []string{"- HIGH CVE-2024-0002", "- LOW CVE-2024-0001", "Layer: RUN apt-get install -y openssl"} {
					if !strings.Contains(a.Message, w) {
						t.Errorf("message %q lacks %q", a.Message, w)
					}
				}
			},
		},
		{
			name:        "kinds, base image, sorted most severe first, unlocated and fixed skipped",
			in:          []findings.Finding{base, noLine, secret, unlocated, fixed},
			wantTitles:  []string{"aws-access-key-id: AWS Access Key ID", "CVE-2024-0009 in openssl 3.0.1", "CVE-2024-0300 in openssl 3.0.1 (fixed in 3.0.2)"},
			wantLevels:  []Level{LevelFailure, LevelWarning, LevelNotice},
			wantSkipped: 1,
			check: func(t *testing.T, anns []Annotation) {
				if !strings.Contains(anns[0].Message, "Fix: remove the secret") || !strings.Contains(anns[0].Message, "(file /app/.env)") {
					t.Errorf("secret message %q", anns[0].Message)
				}
				if !strings.Contains(anns[1].Message, "From the base image") || !strings.Contains(anns[1].Message, "Fix: none yet") {
					t.Errorf("base message %q", anns[1].Message)
				}
				if anns[2].StartLine != 1 {
					t.Errorf("a file without line is annotated at line %d, want 1", anns[2].StartLine)
				}
			},
		},
		{
			name:        "cap counts the findings left out",
			in:          append(append([]findings.Finding{}, grouped...), base, secret),
			max:         2,
			wantLevels:  []Level{LevelFailure, LevelFailure},
			wantSkipped: 1,
		},
		{
			name:       "long group: title cut to 255",
			in:         long,
			wantLevels: []Level{LevelFailure},
			check: func(t *testing.T, anns []Annotation) {
				if n := len(anns[0].Title); n > 255 {
					t.Errorf("title has %d bytes", n)
				}
				if !strings.HasPrefix(anns[0].Title, "40 findings: ") || !strings.HasSuffix(anns[0].Title, "…") {
					t.Errorf("title %q", anns[0].Title)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			anns, skipped := Annotations(tt.in, tt.max)
			if skipped != tt.wantSkipped {
				t.Errorf("skipped %d, want %d", skipped, tt.wantSkipped)
			}
			var levels []Level
			var titles []string
			for _, a := range anns {
				levels = append(levels, a.Level)
				titles = append(titles, a.Title)
			}
			if fmt.Sprint(levels) != fmt.Sprint(tt.wantLevels) {
				t.Errorf("levels %v, want %v", levels, tt.wantLevels)
			}
			if tt.wantTitles != nil && strings.Join(titles, "\n") != strings.Join(tt.wantTitles, "\n") {
				t.Errorf("titles\n%s\nwant\n%s", strings.Join(titles, "\n"), strings.Join(tt.wantTitles, "\n"))
			}
			if tt.check != nil && len(anns) > 0 {
				tt.check(t, anns)
			}
		})
	}
}

func TestUpsertComment(t *testing.T) {
	t.Parallel()
	const pr = 7
	marker := "<!-- ship:image=ghcr.io/acme/app -->"
	other := "<!-- ship:image=ghcr.io/acme/worker -->"
	tests := []struct {
		name   string
		seed   int  // unrelated comments before
		seeded bool // the image's comment exists after them
	}{
		{name: "create then update"},
		{name: "found on the second page", seed: 150, seeded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := testbed.NewGitHubAPI(t)
			c, _ := newTestClient(t, f)
			ctx := context.Background()
			for i := range tt.seed {
				f.AddComment(pr, fmt.Sprintf("LGTM %d", i))
			}
			f.AddComment(pr, other+"\nworker report")
			var seededID int64
			if tt.seeded {
				seededID = f.AddComment(pr, marker+"\nold report")
			}
			first, err := c.UpsertComment(ctx, pr, marker, marker+"\nfirst run")
			if err != nil {
				t.Fatal(err)
			}
			if tt.seeded && first != seededID {
				t.Errorf("updated comment %d, want the existing %d", first, seededID)
			}
			second, err := c.UpsertComment(ctx, pr, marker, "second run") // marker added
			if err != nil {
				t.Fatal(err)
			}
			if second != first {
				t.Errorf("second run wrote comment %d, first %d: duplicated", second, first)
			}
			var mine, others int
			for _, cm := range f.Comments(pr) {
				switch {
				case strings.Contains(cm.Body, marker):
					mine++
					if cm.Body != marker+"\nsecond run" {
						t.Errorf("comment body %q", cm.Body)
					}
				case strings.Contains(cm.Body, other):
					others++
					if cm.Body != other+"\nworker report" {
						t.Errorf("other image's comment changed: %q", cm.Body)
					}
				}
			}
			if mine != 1 || others != 1 {
				t.Errorf("%d comments for the image, %d for the other; want 1 and 1", mine, others)
			}
			var pages int
			for _, call := range f.Calls() {
				if call.Method == "GET" {
					pages++
				}
			}
			if want := 2 * (1 + (tt.seed+1)/100); pages != want {
				t.Errorf("%d list requests, want %d", pages, want)
			}
		})
	}
}

func TestUploadSARIF(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	if err := sarif.Write(&log, sarif.Input{Image: "ghcr.io/acme/app:1", Findings: lineFindings(5)}); err != nil {
		t.Fatal(err)
	}
	f := testbed.NewGitHubAPI(t)
	c, _ := newTestClient(t, f)
	const sha = "1111111111111111111111111111111111111111"
	id, err := c.UploadSARIF(context.Background(), "refs/pull/7/head", sha, log.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if id == "" {
		t.Error("no upload ID")
	}
	ups := f.SARIFs()
	if len(ups) != 1 {
		t.Fatalf("%d uploads", len(ups))
	}
	if !bytes.Equal(ups[0].SARIF, log.Bytes()) {
		t.Error("uploaded SARIF does not decode (base64, gzip) to the input")
	}
	if ups[0].Ref != "refs/pull/7/head" || ups[0].CommitSHA != sha {
		t.Errorf("uploaded for %s %s", ups[0].Ref, ups[0].CommitSHA)
	}
	var doc map[string]any
	if err := json.Unmarshal(ups[0].SARIF, &doc); err != nil || doc["version"] != "2.1.0" {
		t.Errorf("decoded upload is not a SARIF 2.1.0 log: %v", err)
	}
}

func TestPermissionErrors(t *testing.T) {
	t.Parallel()
	const sha = "1111111111111111111111111111111111111111"
	tests := []struct {
		name     string
		method   string
		path     string
		fault    string
		call     func(ctx context.Context, c *Client) error
		wantPerm string // "" : not a permission error
	}{
		{
			name: "fork: create check run", method: "POST", path: "/check-runs$", fault: testbed.FaultFork, wantPerm: PermissionChecks,
			call: func(ctx context.Context, c *Client) error { _, err := c.StartCheck(ctx, "ship", sha); return err },
		},
		{
			name: "fork: list comments", method: "GET", path: "/comments$", fault: testbed.FaultFork, wantPerm: PermissionPullRequests,
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpsertComment(ctx, 7, "<!-- m -->", "b")
				return err
			},
		},
		{
			name: "fork: create comment", method: "POST", path: "/comments$", fault: testbed.FaultFork, wantPerm: PermissionPullRequests,
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpsertComment(ctx, 7, "<!-- m -->", "b")
				return err
			},
		},
		{
			name: "private: SARIF 404", method: "POST", path: "/sarifs$", fault: testbed.FaultNotFound, wantPerm: PermissionSecurityEvents,
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UploadSARIF(ctx, "refs/heads/main", sha, []byte("{}"))
				return err
			},
		},
		{
			name: "422 is not about permissions", method: "POST", path: "/check-runs$", fault: testbed.FaultInvalid,
			call: func(ctx context.Context, c *Client) error { _, err := c.StartCheck(ctx, "ship", sha); return err },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := testbed.NewGitHubAPI(t)
			f.Inject(tt.method, tt.path, tt.fault, 100)
			c, _ := newTestClient(t, f)
			err := tt.call(context.Background(), c)
			if err == nil {
				t.Fatal("no error")
			}
			var pe *PermissionError
			if got := errors.As(err, &pe); got != (tt.wantPerm != "") {
				t.Fatalf("errors.As(%v, *PermissionError) = %v", err, got)
			}
			if pe != nil {
				if pe.Permission != tt.wantPerm {
					t.Errorf("permission %q, want %q", pe.Permission, tt.wantPerm)
				}
				msg := err.Error()
				if strings.Contains(msg, "\n") || !strings.Contains(msg, tt.wantPerm) {
					t.Errorf("message is not one line naming %q: %s", tt.wantPerm, msg)
				}
			}
			if n := len(f.Calls()); n > 2 {
				t.Errorf("%d requests: a %s is not retried", n, tt.fault)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	const sha = "1111111111111111111111111111111111111111"
	tests := []struct {
		name      string
		fault     string
		times     int
		retries   int
		wantErr   bool
		wantCalls int
		wantWaits []time.Duration
	}{
		{name: "502 twice then success", fault: testbed.FaultBadGateway, times: 2, retries: 4, wantCalls: 3, wantWaits: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}},
		{name: "500 beyond the retries", fault: testbed.FaultServer, times: 10, retries: 2, wantErr: true, wantCalls: 3, wantWaits: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}},
		{name: "secondary rate limit honours Retry-After", fault: testbed.FaultSecondaryRateLimit, times: 1, retries: 4, wantCalls: 2, wantWaits: []time.Duration{time.Second}},
		{name: "422 not retried", fault: testbed.FaultInvalid, times: 1, retries: 4, wantErr: true, wantCalls: 1},
		{name: "no retries", fault: testbed.FaultBadGateway, times: 1, retries: 0, wantErr: true, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := testbed.NewGitHubAPI(t)
			f.Inject("POST", "/check-runs$", tt.fault, tt.times)
			c, s := newTestClient(t, f, WithRetries(tt.retries))
			id, err := c.StartCheck(context.Background(), "ship", sha)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil {
				if _, ok := f.CheckRun(id); !ok {
					t.Errorf("check run %d not created", id)
				}
			}
			if n := len(f.Calls()); n != tt.wantCalls {
				t.Errorf("%d requests, want %d", n, tt.wantCalls)
			}
			if got := s.all(); fmt.Sprint(got) != fmt.Sprint(tt.wantWaits) {
				t.Errorf("waits %v, want %v", got, tt.wantWaits)
			}
			for _, call := range f.Calls() {
				if !bytes.Contains(call.Body, []byte(sha)) {
					t.Errorf("a retry sent body %q", call.Body)
				}
			}
		})
	}
}

func TestWorkflowCommands(t *testing.T) {
	t.Parallel()
	var fs []findings.Finding
	add := func(n int, sev findings.Severity, start int) {
		for i := range n {
			fs = append(fs, vuln(fmt.Sprintf("CVE-%d-%d", sev, i), sev, "Dockerfile", start+i))
		}
	}
	add(25, findings.SeverityCritical, 100)
	add(3, findings.SeverityMedium, 200)
	add(15, findings.SeverityLow, 300)
	fs = append(fs, vuln("CVE-X", findings.SeverityHigh, "", 0), vuln("CVE-Y", findings.SeverityLow, "", 0))

	got := WorkflowCommands(fs)
	count := map[string]int{}
	for _, l := range got {
		count[l[:strings.Index(l, " ")]]++
	}
	want := map[string]int{"::error": 10, "::warning": 3, "::notice": 10}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("commands per level %v, want %v", count, want)
	}
	// 15 errors + 6 notices not shown, 2 without location.
	if last := got[len(got)-1]; !strings.HasPrefix(last, "::notice title=ship::23 more findings not shown") {
		t.Errorf("last command %q", last)
	}
	wantFirst := "::error file=Dockerfile,line=100,title=CVE-4-0 in openssl 3.0.1 (fixed in 3.0.2)::" +
		"CRITICAL CVE-4-0: openssl: overflow%0AFix: upgrade openssl to 3.0.2.%0ALayer: RUN apt-get install -y openssl"
	if got[0] != wantFirst {
		t.Errorf("first command\n%s\nwant\n%s", got[0], wantFirst)
	}
}

func TestWorkflowCommandEscaping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   Annotation
		want string
	}{
		{
			name: "message and properties",
			in:   Annotation{Path: "dir,a:b/Dockerfile", StartLine: 3, EndLine: 3, Level: LevelWarning, Title: "50% a, b: c", Message: "100% done\r\nnext\n"},
			want: "::warning file=dir%2Ca%3Ab/Dockerfile,line=3,title=50%25 a%2C b%3A c::100%25 done%0D%0Anext",
		},
		{
			name: "range and no title",
			in:   Annotation{Path: "Dockerfile", StartLine: 3, EndLine: 5, Level: LevelNotice, Message: "m"},
			want: "::notice file=Dockerfile,line=3,endLine=5::m",
		},
		{
			name: "build failure",
			in:   BuildFailureAnnotation(findings.Location{Path: "Dockerfile", Line: 7}, "RUN make: exit status 2"),
			want: "::error file=Dockerfile,line=7,title=Build failed::RUN make: exit status 2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := WorkflowCommand(tt.in); got != tt.want {
				t.Errorf("WorkflowCommand =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestNewOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    []Option
		wantErr string
	}{
		{name: "no repository", opts: nil, wantErr: "no repository"},
		{name: "bad repository", opts: []Option{WithRepository("acme")}, wantErr: "want owner/name"},
		{name: "bad base URL", opts: []Option{WithRepository("a/b"), WithBaseURL("api.github.com")}, wantErr: "not an absolute URL"},
		{name: "negative retries", opts: []Option{WithRepository("a/b"), WithRetries(-1)}, wantErr: "negative"},
		{name: "GHES", opts: []Option{WithRepository("a/b"), WithBaseURL("https://ghe.example.com/api/v3")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(context.Background(), tt.opts...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := c.gh.BaseURL.String(); got != "https://ghe.example.com/api/v3/" {
					t.Errorf("base URL %s", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestFinishCheckRetriesABatch(t *testing.T) {
	t.Parallel()
	f := testbed.NewGitHubAPI(t)
	c, s := newTestClient(t, f)
	ctx := context.Background()
	id, err := c.StartCheck(ctx, "ship", "1111111111111111111111111111111111111111")
	if err != nil {
		t.Fatal(err)
	}
	f.Inject("PATCH", "/check-runs/", testbed.FaultBadGateway, 1)
	f.Inject("PATCH", "/check-runs/", testbed.FaultSecondaryRateLimit, 1)
	anns, _ := Annotations(lineFindings(120), 0)
	if err := c.FinishCheck(ctx, id, ConclusionFailure, "t", "s", anns, 200); err != nil {
		t.Fatal(err)
	}
	run, _ := f.CheckRun(id)
	if fmt.Sprint(run.AnnotationBatches) != "[50 50 20]" || len(run.Annotations) != 120 {
		t.Errorf("batches %v, %d annotations; want [50 50 20], 120", run.AnnotationBatches, len(run.Annotations))
	}
	if fmt.Sprint(s.all()) != "[10ms 1s]" {
		t.Errorf("waits %v", s.all())
	}
}

func TestConclusionOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   markdown.Status
		want Conclusion
	}{
		{name: "passed", in: markdown.StatusPassed, want: ConclusionSuccess},
		{name: "failed", in: markdown.StatusFailed, want: ConclusionFailure},
		{name: "build failed", in: markdown.StatusBuildFailed, want: ConclusionFailure},
		{name: "report only", in: markdown.StatusReportOnly, want: ConclusionNeutral},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ConclusionOf(tt.in); got != tt.want {
				t.Errorf("ConclusionOf(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
