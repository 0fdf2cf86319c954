package testbed

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Fault kinds for GitHubAPI.Inject.
const (
	FaultFork               = "403-fork"      // 403 Resource not accessible by integration
	FaultNotFound           = "404"           // 404 Not Found
	FaultInvalid            = "422"           // 422 Validation Failed
	FaultServer             = "500"           // 500
	FaultBadGateway         = "502"           // 502 Bad Gateway (HTML body, as GitHub's front end)
	FaultSecondaryRateLimit = "403-secondary" // secondary rate limit, Retry-After: 1
)

// GitHubCall is one request the fake received.
type GitHubCall struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
	// Operation is the matched OpenAPI path template ("" when none).
	Operation string
	// Status is the status the fake answered.
	Status int
}

// githubFault is an injected fault.
type githubFault struct {
	method    string
	path      *regexp.Regexp
	kind      string
	remaining int
}

// GitHubComment is an issue or pull request comment.
type GitHubComment struct {
	ID   int64  `json:"id"`
	Body string `json:"body"`
}

// GitHubCheckRun is a check run as the fake holds it: AnnotationBatches
// counts the annotations of each PATCH.
type GitHubCheckRun struct {
	ID                              int64
	Name, HeadSHA, Status           string
	Conclusion, Title, Summary      string
	Annotations                     []map[string]any
	AnnotationBatches               []int
	PatchesAfterCompletion, Patches int
}

// GitHubSARIF is one SARIF upload.
type GitHubSARIF struct {
	Ref, CommitSHA string
	SARIF          []byte // decoded: base64, then gunzip
}

// GitHubAPI is a fake GitHub REST API for tests. Every request is
// validated against the GitHub REST subset (OpenAPI 3) in the schemas
// directory with kin-openapi (and, for the one body kin-openapi misjudges,
// with santhosh-tekuri/jsonschema: see validBody): an unknown operation or an invalid path,
// query or body fails the test and gets a 404 or 422. Calls are recorded;
// faults (a fork's 403, 404, 422, 500, 502, the secondary rate limit) can
// be injected for the next matching requests.
type GitHubAPI struct {
	t      testing.TB
	URL    string
	router routers.Router
	spec   []byte // the API description, for bodies kin-openapi misjudges

	mu        sync.Mutex
	calls     []GitHubCall
	faults    []*githubFault
	nextID    int64
	comments  map[int][]*GitHubComment
	checkRuns map[int64]*GitHubCheckRun
	sarifs    []GitHubSARIF
}

// NewGitHubAPI starts a fake API validating requests against
// github-rest-subset.openapi.json in SchemasDir.
func NewGitHubAPI(t testing.TB) *GitHubAPI {
	t.Helper()
	spec := filepath.Join(SchemasDir(t), "github-rest-subset.openapi.json")
	doc, err := openapi3.NewLoader().LoadFromFile(spec)
	if err != nil {
		t.Fatalf("loading %s: %v", spec, err)
	}
	// The upstream description carries an example that does not match its
	// schema (pulls: requested_teams[].type); examples are not what is
	// checked here.
	noExamples := openapi3.DisableExamplesValidation()
	if err := doc.Validate(context.Background(), noExamples); err != nil {
		t.Fatalf("validating %s: %v", spec, err)
	}
	raw, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	f := &GitHubAPI{t: t, spec: raw, nextID: 1000, comments: map[int][]*GitHubComment{}, checkRuns: map[int64]*GitHubCheckRun{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL + "/"
	doc.Servers = nil // route on the path alone: a server sees no scheme or host
	f.router, err = legacy.NewRouter(doc, noExamples)
	if err != nil {
		t.Fatalf("building the OpenAPI router: %v", err)
	}
	return f
}

// Inject makes the next times requests matching method and the path
// regular expression fail with kind.
func (f *GitHubAPI) Inject(method, pathRE, kind string, times int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &githubFault{method: method, path: regexp.MustCompile(pathRE), kind: kind, remaining: times})
}

// Calls returns the requests received so far.
func (f *GitHubAPI) Calls() []GitHubCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]GitHubCall(nil), f.calls...)
}

// AddComment seeds a comment on issue n and returns its ID.
func (f *GitHubAPI) AddComment(n int, body string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.comments[n] = append(f.comments[n], &GitHubComment{ID: f.nextID, Body: body})
	return f.nextID
}

// Comments returns the comments on issue or pull request n.
func (f *GitHubAPI) Comments(n int) []GitHubComment {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []GitHubComment
	for _, c := range f.comments[n] {
		out = append(out, *c)
	}
	return out
}

// CheckRun returns the check run id as the fake holds it.
func (f *GitHubAPI) CheckRun(id int64) (GitHubCheckRun, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.checkRuns[id]
	if !ok {
		return GitHubCheckRun{}, false
	}
	return *r, true
}

// CheckRuns returns the check runs created so far, oldest first.
func (f *GitHubAPI) CheckRuns() []GitHubCheckRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]GitHubCheckRun, 0, len(f.checkRuns))
	for _, r := range f.checkRuns {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b GitHubCheckRun) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// SARIFs returns the SARIF uploads received, decoded.
func (f *GitHubAPI) SARIFs() []GitHubSARIF {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]GitHubSARIF(nil), f.sarifs...)
}

func (f *GitHubAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("fake GitHub: reading body: %v", err)
	}
	call := GitHubCall{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		call.Status = rec.status
		f.mu.Lock()
		f.calls = append(f.calls, call)
		f.mu.Unlock()
	}()

	route, params, err := f.router.FindRoute(r)
	if err != nil {
		f.t.Errorf("fake GitHub: %s %s is not an operation of the API subset: %v", r.Method, r.URL.Path, err)
		writeJSON(rec, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	call.Operation = route.Path
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}); err != nil && !(strings.Contains(err.Error(), "does not contain the discriminator property") && f.validBody(route, body)) {
		f.t.Errorf("fake GitHub: %s %s does not validate against the API description: %v\nbody: %s", r.Method, r.URL.Path, err, body)
		writeJSON(rec, http.StatusUnprocessableEntity, map[string]string{"message": "Invalid request", "detail": err.Error()})
		return
	}
	if f.fault(rec, r) {
		return
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.Method + " " + route.Path {
	case "POST /repos/{owner}/{repo}/check-runs":
		var in struct {
			Name    string `json:"name"`
			HeadSHA string `json:"head_sha"`
			Status  string `json:"status"`
		}
		githubDecode(f.t, body, &in)
		f.nextID++
		run := &GitHubCheckRun{ID: f.nextID, Name: in.Name, HeadSHA: in.HeadSHA, Status: in.Status}
		f.checkRuns[run.ID] = run
		writeJSON(rec, http.StatusCreated, map[string]any{"id": run.ID, "name": run.Name, "head_sha": run.HeadSHA, "status": run.Status})
	case "PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}":
		id, _ := strconv.ParseInt(params["check_run_id"], 10, 64)
		run, ok := f.checkRuns[id]
		if !ok {
			writeJSON(rec, http.StatusNotFound, map[string]string{"message": "Not Found"})
			return
		}
		var in struct {
			Name       *string `json:"name"`
			Status     string  `json:"status"`
			Conclusion string  `json:"conclusion"`
			Output     *struct {
				Title       string           `json:"title"`
				Summary     string           `json:"summary"`
				Annotations []map[string]any `json:"annotations"`
			} `json:"output"`
		}
		githubDecode(f.t, body, &in)
		run.Patches++
		if run.Status == "completed" {
			run.PatchesAfterCompletion++
		}
		if in.Name != nil {
			run.Name = *in.Name
		}
		if in.Conclusion != "" {
			run.Status, run.Conclusion = "completed", in.Conclusion
		}
		if in.Status != "" {
			run.Status = in.Status
		}
		if in.Output != nil {
			if in.Output.Title == "" || in.Output.Summary == "" {
				writeJSON(rec, http.StatusUnprocessableEntity, map[string]string{"message": "output requires title and summary"})
				return
			}
			run.Title, run.Summary = in.Output.Title, in.Output.Summary
			run.Annotations = append(run.Annotations, in.Output.Annotations...)
			run.AnnotationBatches = append(run.AnnotationBatches, len(in.Output.Annotations))
		}
		writeJSON(rec, http.StatusOK, map[string]any{"id": run.ID, "name": run.Name, "status": run.Status, "conclusion": run.Conclusion})
	case "GET /repos/{owner}/{repo}/issues/{issue_number}/comments":
		n, _ := strconv.Atoi(params["issue_number"])
		q := r.URL.Query()
		per, _ := strconv.Atoi(q.Get("per_page"))
		if per <= 0 {
			per = 30
		}
		page, _ := strconv.Atoi(q.Get("page"))
		page = max(page, 1)
		all := f.comments[n]
		from, to := min((page-1)*per, len(all)), min(page*per, len(all))
		if to < len(all) {
			rec.Header().Set("Link", fmt.Sprintf(`<%s%s?per_page=%d&page=%d>; rel="next"`, f.URL, r.URL.Path[1:], per, page+1))
		}
		out := make([]GitHubComment, 0, to-from)
		for _, c := range all[from:to] {
			out = append(out, *c)
		}
		writeJSON(rec, http.StatusOK, out)
	case "POST /repos/{owner}/{repo}/issues/{issue_number}/comments":
		n, _ := strconv.Atoi(params["issue_number"])
		var in GitHubComment
		githubDecode(f.t, body, &in)
		f.nextID++
		c := &GitHubComment{ID: f.nextID, Body: in.Body}
		f.comments[n] = append(f.comments[n], c)
		writeJSON(rec, http.StatusCreated, c)
	case "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}":
		id, _ := strconv.ParseInt(params["comment_id"], 10, 64)
		var in GitHubComment
		githubDecode(f.t, body, &in)
		for _, cs := range f.comments {
			for _, c := range cs {
				if c.ID == id {
					c.Body = in.Body
					writeJSON(rec, http.StatusOK, c)
					return
				}
			}
		}
		writeJSON(rec, http.StatusNotFound, map[string]string{"message": "Not Found"})
	case "POST /repos/{owner}/{repo}/code-scanning/sarifs":
		var in struct {
			CommitSHA string `json:"commit_sha"`
			Ref       string `json:"ref"`
			SARIF     string `json:"sarif"`
		}
		githubDecode(f.t, body, &in)
		gz, err := base64.StdEncoding.DecodeString(in.SARIF)
		if err != nil {
			writeJSON(rec, http.StatusBadRequest, map[string]string{"message": "sarif is not base64: " + err.Error()})
			return
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			writeJSON(rec, http.StatusBadRequest, map[string]string{"message": "sarif is not gzip: " + err.Error()})
			return
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			writeJSON(rec, http.StatusBadRequest, map[string]string{"message": "sarif is not gzip: " + err.Error()})
			return
		}
		f.sarifs = append(f.sarifs, GitHubSARIF{Ref: in.Ref, CommitSHA: in.CommitSHA, SARIF: raw})
		writeJSON(rec, http.StatusAccepted, map[string]string{"id": "47177e22-5596-11eb-80a1-c1e54ef945c6", "url": f.URL + "sarif-upload"})
	default:
		writeJSON(rec, http.StatusNotImplemented, map[string]string{"message": "not implemented by the fake"})
	}
}

// validBody validates body against the request body schema of route with
// plain JSON Schema. kin-openapi rejects a check-run create body without
// "status" (the schema's discriminator property), although the property is
// optional (default queued) and JSON Schema's oneOf accepts the body: see
// the schemas README. Such bodies are judged by JSON Schema instead.
func (f *GitHubAPI) validBody(route *routers.Route, body []byte) bool {
	const base = "mem://github-rest-subset.openapi.json"
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(f.spec))
	if err != nil {
		f.t.Errorf("fake GitHub: parsing the API description: %v", err)
		return false
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4) // OpenAPI 3.0 schemas are draft-4 style
	if err := c.AddResource(base, doc); err != nil {
		f.t.Errorf("fake GitHub: %v", err)
		return false
	}
	esc := strings.NewReplacer("~", "~0", "/", "~1").Replace
	ptr := "#/paths/" + esc(route.Path) + "/" + strings.ToLower(route.Method) + "/requestBody/content/" + esc("application/json") + "/schema"
	sch, err := c.Compile(base + ptr)
	if err != nil {
		f.t.Errorf("fake GitHub: compiling %s: %v", ptr, err)
		return false
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return false
	}
	if err := sch.Validate(inst); err != nil {
		f.t.Errorf("fake GitHub: %s %s: body does not validate (JSON Schema): %v", route.Method, route.Path, err)
		return false
	}
	return true
}

// fault answers r with an injected fault, if one matches.
func (f *GitHubAPI) fault(w http.ResponseWriter, r *http.Request) bool {
	f.mu.Lock()
	var kind string
	for _, ft := range f.faults {
		if ft.remaining > 0 && ft.method == r.Method && ft.path.MatchString(r.URL.Path) {
			ft.remaining--
			kind = ft.kind
			break
		}
	}
	f.mu.Unlock()
	switch kind {
	case "":
		return false
	case FaultFork:
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest", "status": "403"})
	case FaultNotFound:
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"})
	case FaultInvalid:
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed", "errors": []map[string]string{{"resource": "CheckRun", "code": "invalid"}}, "status": "422"})
	case FaultServer:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "Server Error"})
	case FaultBadGateway:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
	case FaultSecondaryRateLimit:
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusForbidden, map[string]string{
			"message":           "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
			"documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
		})
	default:
		f.t.Errorf("fake GitHub: unknown fault %q", kind)
		return false
	}
	return true
}

func githubDecode(t testing.TB, b []byte, v any) {
	if err := json.Unmarshal(b, v); err != nil {
		t.Errorf("fake GitHub: decoding body %s: %v", b, err)
	}
}
