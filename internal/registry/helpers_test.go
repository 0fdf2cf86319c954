package registry

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// request is one request a test server saw.
type request struct {
	method, path, query string
	user, password      string // from basic auth, when sent
}

// recorder wraps a handler and records every request.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	reqs []request
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	u, p, _ := req.BasicAuth()
	r.mu.Lock()
	r.reqs = append(r.reqs, request{method: req.Method, path: req.URL.Path, query: req.URL.RawQuery, user: u, password: p})
	r.mu.Unlock()
	r.next.ServeHTTP(w, req)
}

// count returns how many recorded requests match.
func (r *recorder) count(match func(request) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.reqs {
		if match(q) {
			n++
		}
	}
	return n
}

func (r *recorder) all() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = nil
}

// memRegistry returns ggcr's in-memory registry behind a recorder; wrap, when
// not nil, sits between the recorder and the registry.
func memRegistry(t *testing.T, wrap func(http.Handler) http.Handler) (string, *recorder) {
	t.Helper()
	var h http.Handler = ggcrregistry.New(ggcrregistry.Logger(discardLogger()))
	if wrap != nil {
		h = wrap(h)
	}
	rec := &recorder{next: h}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), rec
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// envMap is a WithEnv lookup over m.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// fastBackoff keeps retry tests quick.
var fastBackoff = remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 4}

// newClient returns a hermetic client: empty environment, empty docker
// config dir, fast retries, plus opts.
func newClient(t *testing.T, opts ...Option) *Client {
	t.Helper()
	base := []Option{WithEnv(envMap(nil)), WithDockerConfigDir(t.TempDir()), withBackoff(fastBackoff)}
	c, err := New(append(base, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func randomImage(t *testing.T, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(512, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pushDirect writes img to ref with plain ggcr (test setup).
func pushDirect(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

// digestOf returns the digest of an image or an index.
func digestOf(t *testing.T, m interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// rewriteTransport sends every request to the test server at host over
// plain HTTP, whatever registry it was meant for.
type rewriteTransport struct {
	host  string
	hosts map[string]bool // when set, only these hosts are rewritten
}

func (rt *rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if rt.hosts != nil && !rt.hosts[req.URL.Host] {
		return http.DefaultTransport.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	out.URL.Scheme = "http"
	out.URL.Host = rt.host
	out.Host = rt.host
	resp, err := http.DefaultTransport.RoundTrip(out)
	if resp != nil {
		// Relative Location headers resolve against the registry the
		// client meant, as they would without the rewrite.
		resp.Request = req
	}
	return resp, err
}

func isBlobWrite(q request) bool {
	return strings.Contains(q.path, "/blobs/") && (q.method == http.MethodPost || q.method == http.MethodPatch || q.method == http.MethodPut)
}
