package testbed

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// GitLabCall is one request the fake GitLab received.
type GitLabCall struct {
	Method string
	Path   string // as sent (escaped): /api/v4/projects/group%2Fapp/...
	Query  string
	Header http.Header
	Body   string
	Status int // the status the fake answered
}

// GitLabNote is a merge request note as the fake holds it.
type GitLabNote struct {
	ID     int64  `json:"id"`
	Body   string `json:"body"`
	System bool   `json:"system"`
}

// GitLabFault is an answer the fake gives instead of serving a request:
// Status (with GitLab's JSON message) and, when set, Retry-After. It
// applies to the next request of Method ("" any method).
type GitLabFault struct {
	Status     int
	RetryAfter string
	Method     string
}

// gitlabNotesPath matches the notes API of a merge request, and of one note.
var gitlabNotesPath = regexp.MustCompile(`^/api/v4/projects/([^/]+)/merge_requests/([0-9]+)/notes(?:/([0-9]+))?$`)

// GitLabAPI is a fake GitLab REST API (v4) serving the notes of the merge
// requests of one project, authenticated with a PRIVATE-TOKEN. Every
// request is checked (path, project, token, JSON body {"body": ...}) and
// recorded; queued faults are answered first. Listing pages through the
// notes (per_page=100, oldest first) with X-Next-Page, as GitLab does.
type GitLabAPI struct {
	t testing.TB
	// URL is the API root, CI_API_V4_URL: the server's URL + "/api/v4".
	URL string
	// Project is the project's ID or full path as CI_PROJECT_ID gives it;
	// Token the only PRIVATE-TOKEN accepted.
	Project, Token string
	srv            *httptest.Server

	mu       sync.Mutex
	pageSize int
	calls    []GitLabCall
	faults   []GitLabFault
	notes    map[int][]GitLabNote
	nextID   int64
}

// NewGitLabAPI starts a fake GitLab API for project (an ID or a full path)
// accepting token; it stops when the test ends.
func NewGitLabAPI(t testing.TB, project, token string) *GitLabAPI {
	t.Helper()
	f := &GitLabAPI{t: t, Project: project, Token: token, pageSize: 100, notes: map[int][]GitLabNote{}, nextID: 1000}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.URL = f.srv.URL + "/api/v4"
	return f
}

// Client returns an HTTP client for the fake.
func (f *GitLabAPI) Client() *http.Client { return f.srv.Client() }

// SetPageSize sets how many notes a page of the list holds (default 100).
func (f *GitLabAPI) SetPageSize(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pageSize = n
}

// Fail queues faults.
func (f *GitLabAPI) Fail(faults ...GitLabFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, faults...)
}

// Seed adds notes with bodies to merge request mr.
func (f *GitLabAPI) Seed(mr int, bodies ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range bodies {
		f.nextID++
		f.notes[mr] = append(f.notes[mr], GitLabNote{ID: f.nextID, Body: b})
	}
}

// Calls returns the requests received so far.
func (f *GitLabAPI) Calls() []GitLabCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Notes returns the notes of merge request mr, oldest first.
func (f *GitLabAPI) Notes(mr int) []GitLabNote {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.notes[mr])
}

func (f *GitLabAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("fake GitLab: reading the request: %v", err)
	}
	sw := &statusRecorder{ResponseWriter: w}
	defer func() {
		f.calls = append(f.calls, GitLabCall{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: string(raw), Status: sw.status})
	}()
	if i := slices.IndexFunc(f.faults, func(ft GitLabFault) bool { return ft.Method == "" || ft.Method == r.Method }); i >= 0 {
		ft := f.faults[i]
		f.faults = slices.Delete(f.faults, i, i+1)
		if ft.RetryAfter != "" {
			sw.Header().Set("Retry-After", ft.RetryAfter)
		}
		writeJSON(sw, ft.Status, map[string]string{"message": fmt.Sprintf("%d %s", ft.Status, http.StatusText(ft.Status))})
		return
	}
	if r.Header.Get("PRIVATE-TOKEN") != f.Token {
		writeJSON(sw, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	m := gitlabNotesPath.FindStringSubmatch(r.URL.EscapedPath())
	if m == nil || m[1] != url.PathEscape(f.Project) {
		f.t.Errorf("fake GitLab: request to %s %s: not the notes of a merge request of project %s", r.Method, r.URL.EscapedPath(), f.Project)
		writeJSON(sw, http.StatusNotFound, map[string]string{"message": "404 Project Not Found"})
		return
	}
	mr, _ := strconv.Atoi(m[2])
	switch {
	case r.Method == http.MethodGet && m[3] == "":
		f.list(sw, r, mr)
	case r.Method == http.MethodPost && m[3] == "":
		f.nextID++
		n := GitLabNote{ID: f.nextID, Body: f.noteBody(r, raw)}
		f.notes[mr] = append(f.notes[mr], n)
		writeJSON(sw, http.StatusCreated, n)
	case r.Method == http.MethodPut && m[3] != "":
		id, _ := strconv.ParseInt(m[3], 10, 64)
		text := f.noteBody(r, raw)
		for i, n := range f.notes[mr] {
			if n.ID == id {
				f.notes[mr][i].Body = text
				writeJSON(sw, http.StatusOK, f.notes[mr][i])
				return
			}
		}
		writeJSON(sw, http.StatusNotFound, map[string]string{"message": "404 Not found"})
	default:
		f.t.Errorf("fake GitLab: unexpected request %s %s", r.Method, r.URL.Path)
		sw.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// list serves a page of notes, setting X-Next-Page as GitLab does.
func (f *GitLabAPI) list(w http.ResponseWriter, r *http.Request, mr int) {
	q := r.URL.Query()
	if q.Get("per_page") != "100" {
		f.t.Errorf("fake GitLab: per_page=%q, want 100", q.Get("per_page"))
	}
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		f.t.Errorf("fake GitLab: page=%q", q.Get("page"))
		page = 1
	}
	notes := f.notes[mr]
	lo := min((page-1)*f.pageSize, len(notes))
	hi := min(lo+f.pageSize, len(notes))
	next := ""
	if hi < len(notes) {
		next = strconv.Itoa(page + 1)
	}
	w.Header().Set("X-Next-Page", next)
	page1 := notes[lo:hi]
	if page1 == nil {
		page1 = []GitLabNote{}
	}
	writeJSON(w, http.StatusOK, page1)
}

// noteBody checks the JSON body of a create or update, exactly
// {"body": "..."}, and returns the note's text.
func (f *GitLabAPI) noteBody(r *http.Request, raw []byte) string {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("fake GitLab: %s: Content-Type %q", r.Method, ct)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		f.t.Errorf("fake GitLab: %s: body is not JSON: %v", r.Method, err)
	}
	text, ok := m["body"].(string)
	if len(m) != 1 || !ok {
		f.t.Errorf("fake GitLab: %s: body %s, want {\"body\": string}", r.Method, raw)
	}
	return text
}
