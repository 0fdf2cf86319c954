package gitlab

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/testbed"
)

const (
	testToken   = "glpat-test-token"
	testProject = "group/app" // a path, sent escaped: group%2Fapp
	testMR      = 7
	testMarker  = "<!-- ship:image=registry.example.com/group/app -->"
)

// newFakeGitLab starts a fake GitLab serving the notes of testProject.
func newFakeGitLab(t *testing.T) *testbed.GitLabAPI {
	return testbed.NewGitLabAPI(t, testProject, testToken)
}

// recorded returns the calls f received and the notes of testMR.
func recorded(f *testbed.GitLabAPI) ([]testbed.GitLabCall, []testbed.GitLabNote) {
	return f.Calls(), f.Notes(testMR)
}

// newTestClient returns a client of f whose waits are recorded.
func newTestClient(t *testing.T, f *testbed.GitLabAPI, token string) (*NoteClient, *[]time.Duration) {
	t.Helper()
	c, err := NewNoteClient(f.URL+"/", testProject, token, f.Client())
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

func methods(calls []testbed.GitLabCall) string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Method)
	}
	return strings.Join(out, " ")
}

func TestNoteCreate(t *testing.T) {
	t.Parallel()
	f := newFakeGitLab(t)
	f.Seed(testMR, "LGTM", "<!-- ship:image=registry.example.com/group/other --> other image")
	c, _ := newTestClient(t, f, testToken)
	id, err := c.Upsert(t.Context(), testMR, testMarker, "## ship\nall good")
	if err != nil {
		t.Fatal(err)
	}
	calls, notes := recorded(f)
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
	f := newFakeGitLab(t)
	f.SetPageSize(2)
	// The marker need not open the note; the first note holding it wins.
	f.Seed(testMR, "one", "two", "three", "old heading\n"+testMarker+"\nold report", testMarker+" later")
	c, _ := newTestClient(t, f, testToken)
	id, err := c.Upsert(t.Context(), testMR, testMarker, testMarker+"\nnew report")
	if err != nil {
		t.Fatal(err)
	}
	calls, notes := recorded(f)
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
	f := newFakeGitLab(t)
	c, _ := newTestClient(t, f, testToken)
	first, err := c.Upsert(t.Context(), testMR, testMarker, "run 1")
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Upsert(t.Context(), testMR, testMarker, "run 2")
	if err != nil {
		t.Fatal(err)
	}
	calls, notes := recorded(f)
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
	f := newFakeGitLab(t)
	f.Seed(testMR, testMarker+" old")
	f.Fail(testbed.GitLabFault{Status: http.StatusNotFound, Method: http.MethodPut})
	c, _ := newTestClient(t, f, testToken)
	id, err := c.Upsert(t.Context(), testMR, testMarker, "x")
	if err != nil {
		t.Fatal(err)
	}
	calls, notes := recorded(f)
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
			f := newFakeGitLab(t)
			if tt.token == testToken {
				f.Fail(testbed.GitLabFault{Status: tt.status})
			}
			c, waits := newTestClient(t, f, tt.token)
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
			calls, notes := recorded(f)
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
		f := newFakeGitLab(t)
		f.Fail(testbed.GitLabFault{Status: http.StatusInternalServerError}, testbed.GitLabFault{Status: http.StatusTooManyRequests, RetryAfter: "2"})
		c, waits := newTestClient(t, f, testToken)
		id, err := c.Upsert(t.Context(), testMR, testMarker, "body")
		if err != nil {
			t.Fatal(err)
		}
		calls, notes := recorded(f)
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
		f := newFakeGitLab(t)
		f.Fail(testbed.GitLabFault{Status: 502}, testbed.GitLabFault{Status: 503}, testbed.GitLabFault{Status: 500}, testbed.GitLabFault{Status: 500})
		c, waits := newTestClient(t, f, testToken)
		_, err := c.Upsert(t.Context(), testMR, testMarker, "body")
		var ne *NoteError
		if err == nil || errors.As(err, &ne) || !strings.Contains(err.Error(), "500") {
			t.Errorf("error %v, want the last 500 (not a NoteError)", err)
		}
		calls, _ := recorded(f)
		if len(calls) != 3 {
			t.Errorf("%d calls, want 3", len(calls))
		}
		if want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}; !slices.Equal(*waits, want) {
			t.Errorf("waits %v, want %v", *waits, want)
		}
	})
	t.Run("Retry-After too long", func(t *testing.T) {
		t.Parallel()
		f := newFakeGitLab(t)
		f.Fail(testbed.GitLabFault{Status: http.StatusTooManyRequests, RetryAfter: "3600"})
		c, waits := newTestClient(t, f, testToken)
		if _, err := c.Upsert(t.Context(), testMR, testMarker, "body"); err == nil || !strings.Contains(err.Error(), "429") {
			t.Errorf("error %v, want the 429", err)
		}
		if calls, _ := recorded(f); len(calls) != 1 || len(*waits) != 0 {
			t.Errorf("%d calls, waits %v: an hour is not waited for", len(calls), *waits)
		}
	})
}

func TestNoteTruncated(t *testing.T) {
	t.Parallel()
	f := newFakeGitLab(t)
	c, _ := newTestClient(t, f, testToken)
	line := strings.Repeat("x", 99) + "\n"
	if _, err := c.Upsert(t.Context(), testMR, testMarker, strings.Repeat(line, MaxNote/100+100)); err != nil {
		t.Fatal(err)
	}
	_, notes := recorded(f)
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
