package github

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/intesys/ship-action/internal/report/retryafter"
)

// DefaultBaseURL is the API of github.com (GITHUB_API_URL on github.com).
const DefaultBaseURL = "https://api.github.com/"

// The permissions a workflow grants its token, named as in a workflow's
// permissions block.
const (
	PermissionChecks         = "checks: write"
	PermissionPullRequests   = "pull-requests: write"
	PermissionSecurityEvents = "security-events: write"
)

// Client talks to the GitHub API for one repository.
type Client struct {
	gh          *gh.Client
	owner, repo string
	log         *slog.Logger
	now         func() time.Time
}

// Option configures New.
type Option func(*options) error

type options struct {
	token      string
	baseURL    string
	repository string
	httpClient *http.Client
	logger     *slog.Logger
	retry      retryPolicy
	now        func() time.Time
}

// WithToken authenticates every request with token (github.token or a
// personal access token). Without it requests are anonymous.
func WithToken(token string) Option {
	return func(o *options) error {
		o.token = token
		return nil
	}
}

// WithBaseURL sets the API's base URL (GITHUB_API_URL, for example
// https://ghe.example.com/api/v3); "" keeps DefaultBaseURL.
func WithBaseURL(u string) Option {
	return func(o *options) error {
		if u == "" {
			return nil
		}
		p, err := url.Parse(u)
		if err != nil || p.Scheme == "" || p.Host == "" {
			return fmt.Errorf("parsing GitHub API URL %q: not an absolute URL", u)
		}
		o.baseURL = u
		return nil
	}
}

// WithRepository sets the repository, "owner/name" (GITHUB_REPOSITORY).
// It is required.
func WithRepository(ownerName string) Option {
	return func(o *options) error {
		owner, name, ok := strings.Cut(ownerName, "/")
		if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("parsing repository %q: want owner/name", ownerName)
		}
		o.repository = ownerName
		return nil
	}
}

// WithHTTPClient sets the HTTP client whose transport sends the requests
// (after the retries, which wrap it). Default: http.DefaultClient's.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) error {
		o.httpClient = c
		return nil
	}
}

// WithLogger sets the logger for retries and fallbacks. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.logger = l
		return nil
	}
}

// WithRetries sets how many times a request is retried after a server
// error or a rate limit (default 4; 0 disables retries).
func WithRetries(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("setting retries: %d is negative", n)
		}
		o.retry.retries = n
		return nil
	}
}

// withBackoff sets the first backoff, the longest wait accepted (a longer
// Retry-After is not waited for), and the sleep function (tests record the
// waits instead of sleeping).
func withBackoff(base, maxWait time.Duration, sleep func(context.Context, time.Duration) error) Option {
	return func(o *options) error {
		o.retry.base, o.retry.maxWait = base, maxWait
		if sleep != nil {
			o.retry.sleep = sleep
		}
		return nil
	}
}

// New returns a client for the repository set by WithRepository.
func New(ctx context.Context, opts ...Option) (*Client, error) {
	o := options{
		baseURL: DefaultBaseURL,
		logger:  slog.New(slog.DiscardHandler),
		retry: retryPolicy{
			retries: 4,
			base:    time.Second,
			maxWait: time.Minute,
			sleep:   retryafter.Sleep,
		},
		now: time.Now,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.repository == "" {
		return nil, errors.New("creating GitHub client: no repository (owner/name)")
	}
	base := http.DefaultTransport
	var hc http.Client
	if o.httpClient != nil {
		hc = *o.httpClient
		if hc.Transport != nil {
			base = hc.Transport
		}
	}
	o.retry.log = o.logger
	hc.Transport = &retryTransport{next: base, policy: o.retry}
	c := gh.NewClient(&hc)
	if o.token != "" {
		c = c.WithAuthToken(o.token)
	}
	u, err := url.Parse(o.baseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing GitHub API URL %q: %w", o.baseURL, err)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	c.BaseURL = u
	c.UploadURL = u
	c.UserAgent = "ship-action"
	owner, name, _ := strings.Cut(o.repository, "/")
	return &Client{gh: c, owner: owner, repo: name, log: o.logger, now: o.now}, nil
}

// PermissionError reports that the token may not do what was asked: a 403
// (for example "Resource not accessible by integration", the answer to a
// pull request from a fork) or a 404 (GitHub hides what a token may not
// see). Callers fall back to what needs no permission.
type PermissionError struct {
	// Permission is the permission to grant, as written in a workflow's
	// permissions block ("checks: write").
	Permission string
	// Op is what was attempted ("creating check run").
	Op string
	// StatusCode is the HTTP status, Message GitHub's message.
	StatusCode int
	Message    string
	// Err is the API's error.
	Err error
}

// Error is one line naming the permission to add.
func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s: GitHub answered %d %q: the token needs %q (add it to the workflow's permissions; pull requests from forks get a read-only token)",
		e.Op, e.StatusCode, e.Message, e.Permission)
}

// Unwrap returns the API's error.
func (e *PermissionError) Unwrap() error { return e.Err }

// apiError wraps err of op, turning a 403 or 404 into a *PermissionError
// for permission.
func apiError(op, permission string, err error) error {
	if err == nil {
		return nil
	}
	var (
		er  *gh.ErrorResponse
		rle *gh.RateLimitError
		are *gh.AbuseRateLimitError
	)
	switch {
	case errors.As(err, &rle), errors.As(err, &are):
		return fmt.Errorf("%s: %w", op, err)
	case errors.As(err, &er) && er.Response != nil &&
		(er.Response.StatusCode == http.StatusForbidden || er.Response.StatusCode == http.StatusNotFound):
		return &PermissionError{Permission: permission, Op: op, StatusCode: er.Response.StatusCode, Message: er.Message, Err: err}
	}
	return fmt.Errorf("%s: %w", op, err)
}
