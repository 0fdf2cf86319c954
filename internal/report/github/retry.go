package github

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/intesys/ship-action/internal/report/retryafter"
)

// retryPolicy bounds the retries of one request.
type retryPolicy struct {
	retries int
	base    time.Duration
	maxWait time.Duration
	sleep   func(context.Context, time.Duration) error
	log     *slog.Logger
}

// retryTransport retries requests that failed for a reason that passes:
// server errors (5xx), 429, the secondary rate limit, the primary rate
// limit when it resets soon, and transport errors of idempotent requests.
type retryTransport struct {
	next   http.RoundTripper
	policy retryPolicy
}

// maxErrorBody bounds how much of an error response is read to classify it.
const maxErrorBody = 64 << 10

// RoundTrip sends req, retrying as the policy allows.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := t.policy
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 {
			r = req.Clone(req.Context())
			if req.Body != nil && req.Body != http.NoBody {
				if req.GetBody == nil {
					return nil, errNotRewindable
				}
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r.Body = body
			}
		}
		resp, err := t.next.RoundTrip(r)
		wait, why := t.retryAfter(req, resp, err, attempt)
		if why == "" || attempt >= p.retries {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
			resp.Body.Close()
		}
		p.log.Warn("GitHub API request failed, retrying", "method", req.Method, "path", req.URL.Path, "reason", why, "wait", wait, "attempt", attempt+1, "of", p.retries)
		if err := p.sleep(req.Context(), wait); err != nil {
			return nil, err
		}
	}
}

type retryError string

func (e retryError) Error() string { return string(e) }

const errNotRewindable = retryError("retrying GitHub API request: body cannot be sent again")

// retryAfter says whether the answer to req may pass on a retry, why, and
// how long to wait first. An empty reason means no retry.
func (t *retryTransport) retryAfter(req *http.Request, resp *http.Response, err error, attempt int) (time.Duration, string) {
	p := t.policy
	backoff := p.base << attempt
	if err != nil {
		if req.Context().Err() != nil {
			return 0, ""
		}
		switch req.Method {
		case http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodPut, http.MethodDelete:
			return backoff, "transport error: " + err.Error()
		}
		return 0, "" // a POST may have been applied: not sent twice
	}
	wait, hasRetryAfter := retryafter.Parse(resp.Header.Get("Retry-After"))
	reason := ""
	switch {
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
		reason = resp.Status
	case resp.StatusCode == http.StatusTooManyRequests:
		reason = resp.Status
	case resp.StatusCode == http.StatusForbidden:
		switch {
		case isSecondaryRateLimit(resp):
			reason = "secondary rate limit"
			if !hasRetryAfter {
				wait, hasRetryAfter = time.Minute, true // GitHub's advice: wait at least a minute
			}
		case resp.Header.Get("X-RateLimit-Remaining") == "0":
			reason = "rate limit"
			if reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil && !hasRetryAfter {
				wait, hasRetryAfter = max(time.Until(time.Unix(reset, 0)), 0)+time.Second, true
			}
		case hasRetryAfter:
			reason = "Retry-After"
		}
	}
	if reason == "" {
		return 0, ""
	}
	if !hasRetryAfter {
		wait = backoff
	}
	if wait > p.maxWait {
		return 0, "" // not worth waiting for: the caller moves on
	}
	return wait, reason
}

// isSecondaryRateLimit reads (and restores) resp's body to see whether it
// is the secondary rate limit's answer.
func isSecondaryRateLimit(resp *http.Response) bool {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return false
	}
	var e struct {
		Message          string `json:"message"`
		DocumentationURL string `json:"documentation_url"`
	}
	_ = json.Unmarshal(body, &e)
	return strings.Contains(e.DocumentationURL, "secondary-rate-limit") ||
		strings.Contains(e.DocumentationURL, "abuse-rate-limit") ||
		strings.Contains(strings.ToLower(e.Message), "secondary rate limit")
}
