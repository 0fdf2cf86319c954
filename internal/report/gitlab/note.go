package gitlab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/intesys/ship-action/internal/report/markdown"
	"github.com/intesys/ship-action/internal/report/retryafter"
)

// MaxNote is the longest note body GitLab accepts, in characters.
const MaxNote = 1_000_000

// truncatedNote ends a note cut to MaxNote.
const truncatedNote = "\n_This note was cut to fit GitLab's limit: the job log and the job's artifacts have all of it._"

// maxPages bounds the note pages read from one merge request (100 notes a
// page), should a server keep answering with a next page.
const maxPages = 1000

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// NoteClient writes notes on the merge requests of one GitLab project
// through the REST API (v4), authenticated with a PRIVATE-TOKEN.
type NoteClient struct {
	api       string // API root without a trailing slash
	projectID string
	token     string
	http      *http.Client

	// tries bounds the attempts of one request; backoff is the first wait
	// between them (doubled each time) and maxWait the longest wait
	// accepted (a longer Retry-After gives up); sleep waits (tests record).
	tries   int
	backoff time.Duration
	maxWait time.Duration
	sleep   func(context.Context, time.Duration) error
}

// NewNoteClient returns a client for the project projectID (CI_PROJECT_ID,
// or the project's full path) of the API at apiURL (CI_API_V4_URL, for
// example https://gitlab.example.com/api/v4), sending token as the
// PRIVATE-TOKEN header. CI_JOB_TOKEN cannot write notes: token is a
// project, group or personal access token with the api scope. An empty
// token gives a *NoteError. httpClient nil means http.DefaultClient.
func NewNoteClient(apiURL, projectID, token string, httpClient *http.Client) (*NoteClient, error) {
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("GitLab API URL %q: want an http(s) URL such as https://gitlab.example.com/api/v4", apiURL)
	}
	if projectID == "" {
		return nil, errors.New("GitLab merge request note: no project ID (CI_PROJECT_ID)")
	}
	if token == "" {
		return nil, &NoteError{Op: "writing the merge request note"}
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &NoteClient{
		api:       strings.TrimSuffix(apiURL, "/"),
		projectID: projectID,
		token:     token,
		http:      httpClient,
		tries:     3,
		backoff:   time.Second,
		maxWait:   30 * time.Second,
		sleep:     retryafter.Sleep,
	}, nil
}

// NoteError reports that the token may not write the note: none was given,
// GitLab refused it (401), refused the action (403), or does not show the
// project or merge request to it (404). Callers detect it with errors.As,
// warn once and go on.
type NoteError struct {
	// Op is what was attempted ("listing the notes of merge request !12").
	Op string
	// StatusCode is the HTTP status; 0 when no token was given.
	StatusCode int
	// Message is GitLab's message.
	Message string
}

// Error is one line saying what the token lacks.
func (e *NoteError) Error() string {
	switch e.StatusCode {
	case 0:
		return e.Op + ": no token: set gitlab-token to a project access token with the api scope (CI_JOB_TOKEN cannot write notes)"
	case http.StatusUnauthorized:
		return fmt.Sprintf("%s: GitLab answered 401 %q: gitlab-token is invalid, expired or revoked, or lacks the api scope", e.Op, e.Message)
	case http.StatusNotFound:
		return fmt.Sprintf("%s: GitLab answered 404 %q: the project or merge request is not visible to gitlab-token (a token of another project, or no role in this one)", e.Op, e.Message)
	}
	return fmt.Sprintf("%s: GitLab answered %d %q: gitlab-token needs the api scope and at least the Reporter role in the project (and edits only notes its own user wrote)", e.Op, e.StatusCode, e.Message)
}

// note is the part of a GitLab note the client reads.
type note struct {
	ID     int64  `json:"id"`
	Body   string `json:"body"`
	System bool   `json:"system"`
}

// Upsert makes body the merge request's note that carries marker: the
// first note (oldest first) whose body contains marker is updated, else a
// note is created. body is prefixed with marker when it lacks it, and cut
// to MaxNote with a line saying so. It returns the note's ID.
func (c *NoteClient) Upsert(ctx context.Context, mrIID int, marker, body string) (int64, error) {
	if marker == "" {
		return 0, fmt.Errorf("writing a note on merge request !%d: empty marker", mrIID)
	}
	if mrIID <= 0 {
		return 0, fmt.Errorf("writing a note on merge request !%d: not a merge request IID", mrIID)
	}
	body = withMarker(body, marker)
	id, err := c.find(ctx, mrIID, marker)
	if err != nil {
		return 0, err
	}
	payload := map[string]string{"body": body}
	if id != 0 {
		op := fmt.Sprintf("updating note %d on merge request !%d", id, mrIID)
		_, err := c.do(ctx, op, http.MethodPut, c.notesPath(mrIID)+"/"+strconv.FormatInt(id, 10), nil, payload, nil)
		var ne *NoteError
		if !errors.As(err, &ne) || ne.StatusCode != http.StatusNotFound {
			return id, err
		}
		// The note was deleted since it was listed: write a new one.
	}
	var created note
	op := fmt.Sprintf("creating a note on merge request !%d", mrIID)
	if _, err := c.do(ctx, op, http.MethodPost, c.notesPath(mrIID), nil, payload, &created); err != nil {
		return 0, err
	}
	return created.ID, nil
}

// withMarker returns body carrying marker, cut to MaxNote.
func withMarker(body, marker string) string {
	if !strings.Contains(body, marker) {
		body = marker + "\n" + body
	}
	cut := markdown.Truncate(body, MaxNote, truncatedNote)
	if strings.Contains(cut, marker) {
		return cut
	}
	// The marker was past the cut: put it first.
	return marker + "\n" + markdown.Truncate(body, MaxNote-len(marker)-1, truncatedNote)
}

// find returns the ID of the first note of merge request mrIID whose body
// contains marker, 0 when there is none.
func (c *NoteClient) find(ctx context.Context, mrIID int, marker string) (int64, error) {
	op := fmt.Sprintf("listing the notes of merge request !%d", mrIID)
	page := "1"
	for range maxPages {
		q := url.Values{
			"per_page": {"100"},
			"page":     {page},
			"sort":     {"asc"},
			"order_by": {"created_at"},
		}
		var notes []note
		h, err := c.do(ctx, op, http.MethodGet, c.notesPath(mrIID), q, nil, &notes)
		if err != nil {
			return 0, err
		}
		for _, n := range notes {
			if !n.System && strings.Contains(n.Body, marker) {
				return n.ID, nil
			}
		}
		next := strings.TrimSpace(h.Get("X-Next-Page"))
		if next == "" || next == page {
			return 0, nil
		}
		page = next
	}
	return 0, fmt.Errorf("%s: more than %d pages", op, maxPages)
}

// notesPath is the API path of the notes of merge request mrIID.
func (c *NoteClient) notesPath(mrIID int) string {
	return "/projects/" + url.PathEscape(c.projectID) + "/merge_requests/" + strconv.Itoa(mrIID) + "/notes"
}

// do sends one API request, retrying server errors and 429, and decodes
// the JSON answer into out (when not nil). It returns the answer's header.
func (c *NoteClient) do(ctx context.Context, op, method, path string, query url.Values, in, out any) (http.Header, error) {
	var payload []byte
	if in != nil {
		var err error
		if payload, err = json.Marshal(in); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	target := c.api + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(payload))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		req.Header.Set("PRIVATE-TOKEN", c.token)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "ship-action")
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			// A POST may have been applied: it is not sent twice.
			if ctx.Err() != nil || method == http.MethodPost || attempt >= c.tries {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			if err := c.sleep(ctx, c.backoff<<(attempt-1)); err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			continue
		}
		if resp.StatusCode/100 == 2 {
			defer resp.Body.Close()
			if out != nil {
				if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
					return nil, fmt.Errorf("%s: decoding GitLab's answer: %w", op, err)
				}
			}
			return resp.Header, nil
		}
		msg := errorMessage(resp)
		retryable := resp.StatusCode == http.StatusTooManyRequests ||
			(resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented)
		if retryable && attempt < c.tries {
			wait, ok := retryafter.Parse(resp.Header.Get("Retry-After"))
			if !ok {
				wait = c.backoff << (attempt - 1)
			}
			if wait <= c.maxWait {
				if err := c.sleep(ctx, wait); err != nil {
					return nil, fmt.Errorf("%s: %w", op, err)
				}
				continue
			}
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			return nil, &NoteError{Op: op, StatusCode: resp.StatusCode, Message: msg}
		}
		return nil, fmt.Errorf("%s: GitLab answered %d %q", op, resp.StatusCode, msg)
	}
}

// errorMessage reads and closes resp's body and returns GitLab's message:
// "message" (a string or an object of field errors), else "error" and
// "error_description" (OAuth errors), else the status text.
func errorMessage(resp *http.Response) string {
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var e struct {
		Message          json.RawMessage `json:"message"`
		Error            string          `json:"error"`
		ErrorDescription string          `json:"error_description"`
	}
	if json.Unmarshal(raw, &e) == nil {
		var s string
		switch {
		case json.Unmarshal(e.Message, &s) == nil && s != "":
			return s
		case len(e.Message) > 0 && string(e.Message) != "null":
			return string(e.Message)
		case e.Error != "":
			return strings.TrimSuffix(e.Error+": "+e.ErrorDescription, ": ")
		}
	}
	return http.StatusText(resp.StatusCode)
}
