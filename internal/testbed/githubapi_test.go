package testbed

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// errorsTB records the fake's complaints instead of failing the test, so
// that the fake itself can be tested.
type errorsTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (e *errorsTB) Errorf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}

func (e *errorsTB) all() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.errs, "\n")
}

// TestFakeValidates checks that the fake API rejects requests the real API
// description does not allow, and accepts valid ones.
func TestFakeValidates(t *testing.T) {
	t.Parallel()
	anns := func(n int) string {
		var a []string
		for i := range n {
			a = append(a, fmt.Sprintf(`{"path":"Dockerfile","start_line":%d,"end_line":%d,"annotation_level":"notice","message":"m"}`, i+1, i+1))
		}
		return "[" + strings.Join(a, ",") + "]"
	}
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantErr    string // in the fake's complaint; "" : none
	}{
		{name: "valid create", method: "POST", path: "repos/a/b/check-runs", body: `{"name":"ship","head_sha":"abc","status":"in_progress"}`, wantStatus: http.StatusCreated},
		{name: "create without status", method: "POST", path: "repos/a/b/check-runs", body: `{"name":"ship","head_sha":"abc"}`, wantStatus: http.StatusCreated},
		{name: "create without status nor head_sha", method: "POST", path: "repos/a/b/check-runs", body: `{"name":"ship"}`, wantStatus: http.StatusUnprocessableEntity, wantErr: "head_sha"},
		{name: "create without status, bad conclusion", method: "POST", path: "repos/a/b/check-runs", body: `{"name":"ship","head_sha":"abc","conclusion":"great"}`, wantStatus: http.StatusUnprocessableEntity, wantErr: "(JSON Schema)"},
		{name: "create without head_sha", method: "POST", path: "repos/a/b/check-runs", body: `{"name":"ship","status":"in_progress"}`, wantStatus: http.StatusUnprocessableEntity, wantErr: "head_sha"},
		{name: "completed without conclusion", method: "POST", path: "repos/a/b/check-runs", body: `{"name":"ship","head_sha":"abc","status":"completed"}`, wantStatus: http.StatusUnprocessableEntity, wantErr: "conclusion"},
		{name: "bad level", method: "PATCH", path: "repos/a/b/check-runs/1", body: `{"output":{"title":"t","summary":"s","annotations":[{"path":"D","start_line":1,"end_line":1,"annotation_level":"error","message":"m"}]}}`, wantStatus: http.StatusUnprocessableEntity, wantErr: "annotation_level"},
		{name: "51 annotations", method: "PATCH", path: "repos/a/b/check-runs/1", body: `{"output":{"title":"t","summary":"s","annotations":` + anns(51) + `}}`, wantStatus: http.StatusUnprocessableEntity, wantErr: "maximum number of items is 50"},
		{name: "summary too long", method: "PATCH", path: "repos/a/b/check-runs/1", body: `{"output":{"title":"t","summary":"` + strings.Repeat("x", 65536) + `"}}`, wantStatus: http.StatusUnprocessableEntity, wantErr: "maximum string length"},
		{name: "sarif without ref", method: "POST", path: "repos/a/b/code-scanning/sarifs", body: `{"commit_sha":"1111111111111111111111111111111111111111","sarif":"H4sI"}`, wantStatus: http.StatusUnprocessableEntity, wantErr: "ref"},
		{name: "sarif bad sha", method: "POST", path: "repos/a/b/code-scanning/sarifs", body: `{"commit_sha":"xyz","ref":"refs/heads/main","sarif":"H4sI"}`, wantStatus: http.StatusUnprocessableEntity, wantErr: "commit_sha"},
		{name: "unknown operation", method: "DELETE", path: "repos/a/b/issues/comments/1", wantStatus: http.StatusNotFound, wantErr: "not an operation"},
		{name: "bad query", method: "GET", path: "repos/a/b/issues/1/comments?per_page=abc", wantStatus: http.StatusUnprocessableEntity, wantErr: "per_page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := &errorsTB{TB: t}
			f := NewGitHubAPI(tb)
			req, err := http.NewRequest(tt.method, f.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d (complaints: %s)", resp.StatusCode, tt.wantStatus, tb.all())
			}
			errs := tb.all()
			switch {
			case tt.wantErr == "" && errs != "":
				t.Errorf("unexpected complaint: %s", errs)
			case tt.wantErr != "" && !strings.Contains(errs, tt.wantErr):
				t.Errorf("complaint %q lacks %q", errs, tt.wantErr)
			}
		})
	}
}
