package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testToken   = "glpat-test-token"
	testProject = "group/app" // a path, sent escaped: group%2Fapp
	testMR      = 7
	testMarker  = "<!-- ship:image=registry.example.com/group/app -->"
)

// apiCall is one request the fake GitLab received.
type apiCall struct {
	Method, Path string // Path as sent (escaped)
	Query        string
	Body         string
}

// fault is an answer the fake gives instead of serving a request (of
// method, when set).
type fault struct {
	status     int
	retryAfter string
	method     string
}

// fakeGitLab serves the notes API of one merge request: it checks every
// request (method, path, PRIVATE-TOKEN, JSON body), records it, and
// answers with the queued faults first.
type fakeGitLab struct {
	t        *testing.T
	pageSize int

	mu     sync.Mutex
	calls  []apiCall
	faults []fault
	notes  []note
	nextID int64
}

func newFakeGitLab(t *testing.T) (*fakeGitLab, *httptest.Server) {
	f := &fakeGitLab{t: t, pageSize: 100, nextID: 1000}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeGitLab) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("reading the request: %v", err)
	}
	body := string(raw)
	f.calls = append(f.calls, apiCall{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Body: body})

	if i := slices.IndexFunc(f.faults, func(ft fault) bool { return ft.method == "" || ft.method == r.Method }); i >= 0 {
		ft := f.faults[i]
		f.faults = slices.Delete(f.faults, i, i+1)
		if ft.retryAfter != "" {
			w.Header().Set("Retry-After", ft.retryAfter)
		}
		writeJSON(w, ft.status, map[string]string{"message": fmt.Sprintf("%d %s", ft.status, http.StatusText(ft.status))})
		return
	}
	if r.Header.Get("PRIVATE-TOKEN") != testToken {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	base := "/api/v4/projects/group%2Fapp/merge_requests/" + strconv.Itoa(testMR) + "/notes"
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), base)
	if !ok {
		f.t.Errorf("request to %s %s: not the notes of merge request !%d", r.Method, r.URL.EscapedPath(), testMR)
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Project Not Found"})
		return
	}
	switch {
	case r.Method == http.MethodGet && rest == "":
		f.list(w, r)
	case r.Method == http.MethodPost && rest == "":
		text := f.noteBody(r, body)
		f.nextID++
		n := note{ID: f.nextID, Body: text}
		f.notes = append(f.notes, n)
		writeJSON(w, http.StatusCreated, n)
	case r.Method == http.MethodPut && strings.HasPrefix(rest, "/"):
		id, err := strconv.ParseInt(rest[1:], 10, 64)
		if err != nil {
			f.t.Errorf("PUT %s: bad note ID", r.URL.Path)
		}
		text := f.noteBody(r, body)
		for i := range f.notes {
			if f.notes[i].ID == id {
				f.notes[i].Body = text
				writeJSON(w, http.StatusOK, f.notes[i])
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "404 Not found"})
	default:
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// list serves a page of notes, setting X-Next-Page as GitLab does.
func (f *fakeGitLab) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("per_page") != "100" {
		f.t.Errorf("per_page=%q, want 100", q.Get("per_page"))
	}
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		f.t.Errorf("page=%q", q.Get("page"))
		page = 1
	}
	lo := min((page-1)*f.pageSize, len(f.notes))
	hi := min(lo+f.pageSize, len(f.notes))
	if hi < len(f.notes) {
		w.Header().Set("X-Next-Page", strconv.Itoa(page+1))
	} else {
		w.Header().Set("X-Next-Page", "")
	}
	writeJSON(w, http.StatusOK, f.notes[lo:hi])
}

// noteBody checks the JSON body of a create or update: exactly {"body": "..."}.
func (f *fakeGitLab) noteBody(r *http.Request, raw string) string {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("%s: Content-Type %q", r.Method, ct)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		f.t.Errorf("%s: body is not JSON: %v", r.Method, err)
	}
	text, ok := m["body"].(string)
	if len(m) != 1 || !ok {
		f.t.Errorf("%s: body %s, want {\"body\": string}", r.Method, raw)
	}
	return text
}

func (f *fakeGitLab) fail(faults ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, faults...)
}

func (f *fakeGitLab) seed(bodies ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range bodies {
		f.nextID++
		f.notes = append(f.notes, note{ID: f.nextID, Body: b})
	}
}

func (f *fakeGitLab) recorded() ([]apiCall, []note) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls), slices.Clone(f.notes)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// newTestClient returns a client of srv whose waits are recorded.
func newTestClient(t *testing.T, srv *httptest.Server, token string) (*NoteClient, *[]time.Duration) {
	t.Helper()
	c, err := NewNoteClient(srv.URL+"/api/v4/", testProject, token, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	c.backoff = 10 * time.Millisecond
	c.sleep = func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}
	return c, &waits
}

func methods(calls []apiCall) string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Method)
	}
	return strings.Join(out, " ")
}

func TestNoteCreate(t *testing.T) {
	t.Parallel()
	f, srv := newFakeGitLab(t)
	f.seed("LGTM", "<!-- ship:image=registry.example.com/group/other --> other image")
	c, _ := newTestClient(t, srv, testToken)
	id, err := c.Upsert(t.Context(), testMR, testMarker, "## ship\nall good")
	if err != nil {
		t.Fatal(err)
	}
	calls, notes := f.recorded()
	if got := methods(calls); got != "GET POST" {
		t.Errorf("calls %q, want GET POST", got)
	}
	if len(notes) != 3 || notes[2].ID != id {
		t.Fatalf("notes %+v, want a third with ID %d", notes, id)
	}
	if want := testMarker + "\n## ship\nall good"; notes[2].Body != want {
		t.Errorf("body %q, want %q", notes[2].Body, want)
	}
	if q := calls[0].Query; !strings.Contains(q, "page=1") || !strings.Contains(q, "per_page=100") {
		t.Errorf("list query %q", q)
	}
}

func TestNoteFoundOnSecondPage(t *testing.T) {
	t.Parallel()
	f, srv := newFakeGitLab(t)
	f.pageSize = 2
	// The marker need not open the note; the first note holding it wins.
	f.seed("one", "two", "three", "old heading\n"+testMarker+"\nold report", testMarker+" later")
	c, _ := newTestClient(t, srv, testToken)
	id, err := c.Upsert(t.Context(), testMR, testMarker, testMarker+"\nnew report")
	if err != nil {
		t.Fatal(err)
	}
	calls, notes := f.recorded()
	if got := methods(calls); got != "GET GET PUT" {
		t.Errorf("calls %q, want GET GET PUT", got)
	}
	if !strings.Contains(calls[1].Query, "page=2") {
		t.Errorf("second list query %q, want page 2 (X-Next-Page)", calls[1].Query)
	}
	if id != notes[3].ID || !strings.HasSuffix(calls[2].Path, "/notes/"+strconv.FormatInt(id, 10)) {
		t.Errorf("updated %d via %s, want note %d", id, calls[2].Path, notes[3].ID)
	}
	if notes[3].Body != testMarker+"\nnew report" || notes[4].Body != testMarker+" later" {
		t.Errorf("notes after update: %+v", notes[3:])
	}
}

func TestNoteUpdatedInPlace(t *testing.T) {
	t.Parallel()
	f, srv := newFakeGitLab(t)
	c, _ := newTestClient(t, srv, testToken)
	first, err := c.Upsert(t.Context(), testMR, testMarker, "run 1")
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Upsert(t.Context(), testMR, testMarker, "run 2")
	if err != nil {
		t.Fatal(err)
	}
	calls, notes := f.recorded()
	if first != second || len(notes) != 1 {
		t.Fatalf("IDs %d then %d, %d notes: want one note updated in place", first, second, len(notes))
	}
	if notes[0].Body != testMarker+"\nrun 2" {
		t.Errorf("body %q", notes[0].Body)
	}
	if got := methods(calls); got != "GET POST GET PUT" {
		t.Errorf("calls %q", got)
	}
}

func TestNoteDeletedMeanwhileIsCreated(t *testing.T) {
	t.Parallel()
	f, srv := newFakeGitLab(t)
	f.seed(testMarker + " old")
	f.fail(fault{status: http.StatusNotFound, method: http.MethodPut})
	c, _ := newTestClient(t, srv, testToken)
	id, err := c.Upsert(t.Context(), testMR, testMarker, "x")
	if err != nil {
		t.Fatal(err)
	}
	calls, notes := f.recorded()
	if got := methods(calls); got != "GET PUT POST" {
		t.Errorf("calls %q, want GET PUT POST", got)
	}
	if len(notes) != 2 || id != notes[1].ID {
		t.Errorf("returned %d, notes %+v: want the new note", id, notes)
	}
}

func TestNotePermissionErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status int
		token  string
		want   string
	}{
		{http.StatusUnauthorized, "wrong-token", "api scope"},
		{http.StatusForbidden, testToken, "Reporter role"},
		{http.StatusNotFound, testToken, "not visible to gitlab-token"},
	} {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			t.Parallel()
			f, srv := newFakeGitLab(t)
			if tt.token == testToken {
				f.fail(fault{status: tt.status})
			}
			c, waits := newTestClient(t, srv, tt.token)
			_, err := c.Upsert(t.Context(), testMR, testMarker, "body")
			var ne *NoteError
			if !errors.As(err, &ne) {
				t.Fatalf("error %v (%T), want a *NoteError", err, err)
			}
			if ne.StatusCode != tt.status || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q (status %d), want one line with %q", err, ne.StatusCode, tt.want)
			}
			if !strings.Contains(err.Error(), "merge request !7") {
				t.Errorf("error %q does not name the merge request", err)
			}
			calls, notes := f.recorded()
			if len(calls) != 1 || len(*waits) != 0 || len(notes) != 0 {
				t.Errorf("%d calls, waits %v, %d notes: want one call, no retry, no note", len(calls), *waits, len(notes))
			}
		})
	}
}

func TestNoteNoToken(t *testing.T) {
	t.Parallel()
	_, err := NewNoteClient("https://gitlab.example.com/api/v4", "42", "", nil)
	var ne *NoteError
	if !errors.As(err, &ne) || ne.StatusCode != 0 || !strings.Contains(err.Error(), "CI_JOB_TOKEN cannot write notes") {
		t.Errorf("error %v, want a *NoteError about the missing token", err)
	}
	for _, tt := range []struct{ url, project string }{
		{"gitlab.example.com/api/v4", "42"},
		{"ftp://gitlab.example.com/api/v4", "42"},
		{"https://gitlab.example.com/api/v4", ""},
	} {
		if _, err := NewNoteClient(tt.url, tt.project, testToken, nil); err == nil {
			t.Errorf("NewNoteClient(%q, %q) accepted", tt.url, tt.project)
		}
	}
}

func TestNoteRetries(t *testing.T) {
	t.Parallel()
	t.Run("then success", func(t *testing.T) {
		t.Parallel()
		f, srv := newFakeGitLab(t)
		f.fail(fault{status: http.StatusInternalServerError}, fault{status: http.StatusTooManyRequests, retryAfter: "2"})
		c, waits := newTestClient(t, srv, testToken)
		id, err := c.Upsert(t.Context(), testMR, testMarker, "body")
		if err != nil {
			t.Fatal(err)
		}
		calls, notes := f.recorded()
		if got := methods(calls); got != "GET GET GET POST" {
			t.Errorf("calls %q, want three GETs (two failed) then POST", got)
		}
		if want := []time.Duration{10 * time.Millisecond, 2 * time.Second}; !slices.Equal(*waits, want) {
			t.Errorf("waits %v, want %v (backoff, then Retry-After)", *waits, want)
		}
		if len(notes) != 1 || notes[0].ID != id {
			t.Errorf("notes %+v, id %d", notes, id)
		}
	})
	t.Run("gives up after three tries", func(t *testing.T) {
		t.Parallel()
		f, srv := newFakeGitLab(t)
		f.fail(fault{status: 502}, fault{status: 503}, fault{status: 500}, fault{status: 500})
		c, waits := newTestClient(t, srv, testToken)
		_, err := c.Upsert(t.Context(), testMR, testMarker, "body")
		var ne *NoteError
		if err == nil || errors.As(err, &ne) || !strings.Contains(err.Error(), "500") {
			t.Errorf("error %v, want the last 500 (not a NoteError)", err)
		}
		calls, _ := f.recorded()
		if len(calls) != 3 {
			t.Errorf("%d calls, want 3", len(calls))
		}
		if want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}; !slices.Equal(*waits, want) {
			t.Errorf("waits %v, want %v", *waits, want)
		}
	})
	t.Run("Retry-After too long", func(t *testing.T) {
		t.Parallel()
		f, srv := newFakeGitLab(t)
		f.fail(fault{status: http.StatusTooManyRequests, retryAfter: "3600"})
		c, waits := newTestClient(t, srv, testToken)
		if _, err := c.Upsert(t.Context(), testMR, testMarker, "body"); err == nil || !strings.Contains(err.Error(), "429") {
			t.Errorf("error %v, want the 429", err)
		}
		if calls, _ := f.recorded(); len(calls) != 1 || len(*waits) != 0 {
			t.Errorf("%d calls, waits %v: an hour is not waited for", len(calls), *waits)
		}
	})
}

func TestNoteTruncated(t *testing.T) {
	t.Parallel()
	f, srv := newFakeGitLab(t)
	c, _ := newTestClient(t, srv, testToken)
	line := strings.Repeat("x", 99) + "\n"
	if _, err := c.Upsert(t.Context(), testMR, testMarker, strings.Repeat(line, MaxNote/100+100)); err != nil {
		t.Fatal(err)
	}
	_, notes := f.recorded()
	body := notes[0].Body
	if len(body) > MaxNote || !strings.HasPrefix(body, testMarker+"\n") || !strings.HasSuffix(body, truncatedNote) {
		t.Errorf("body of %d bytes (max %d), starts %q, ends %q", len(body), MaxNote, body[:min(len(body), 60)], body[max(len(body)-60, 0):])
	}
}

func TestNoteMarkerPastTheCutStaysFirst(t *testing.T) {
	t.Parallel()
	body := strings.Repeat(strings.Repeat("y", 99)+"\n", MaxNote/100+10) + testMarker
	got := withMarker(body, testMarker)
	if len(got) > MaxNote || !strings.HasPrefix(got, testMarker+"\n") {
		t.Errorf("%d bytes, starts %q", len(got), got[:60])
	}
}
