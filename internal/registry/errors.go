package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// PushError reports a push that did not complete: which tags were written
// and which were not. Its message never contains a secret.
type PushError struct {
	Digest     v1.Hash  // the digest every tag was meant to point at
	Written    []string // tags that now point at Digest
	NotWritten []string // tags that were not written
	Err        error    // the cause, already scrubbed of secrets
}

// Error implements error.
func (e *PushError) Error() string {
	var b strings.Builder
	b.WriteString("pushing image ")
	b.WriteString(e.Digest.String())
	b.WriteString(": tags not written: ")
	b.WriteString(strings.Join(e.NotWritten, ", "))
	if len(e.Written) > 0 {
		b.WriteString(" (written: ")
		b.WriteString(strings.Join(e.Written, ", "))
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *PushError) Unwrap() error { return e.Err }

// AuthError is a 401 or 403 from a registry: it names the registry, the
// credential source and what to check.
type AuthError struct {
	Registry   string
	Source     string // one of the Source* constants
	StatusCode int    // 401 or 403
	Push       bool   // the request was part of a push
	Err        error  // the registry's answer, scrubbed of secrets
}

// Error implements error.
func (e *AuthError) Error() string {
	what := "denied access"
	if e.StatusCode == http.StatusUnauthorized {
		what = "rejected the credentials"
	}
	if e.Source == SourceAnonymous {
		what = "requires credentials"
	}
	return fmt.Sprintf("registry %s %s (HTTP %d, credential source: %s): %s", e.Registry, what, e.StatusCode, e.Source, authHint(e.Registry, e.Source, e.Push))
}

// Unwrap returns the registry's answer.
func (e *AuthError) Unwrap() error { return e.Err }

func authHint(reg, source string, push bool) string {
	access := "pull from"
	if push {
		access = "push to"
	}
	switch source {
	case SourceExplicit:
		return fmt.Sprintf("check the registry-username and registry-password inputs and that this user may %s the repository", access)
	case SourceGitHubToken:
		return "check that the workflow grants `permissions: packages: write` and that the package's settings give this repository write access"
	case SourceGitLab:
		return fmt.Sprintf("check that the job token (CI_REGISTRY_USER) may %s this project's container registry", access)
	case SourceDockerConfig:
		return fmt.Sprintf("check the entry for %s in the docker config (docker login %s) or its credential helper", reg, reg)
	default:
		return fmt.Sprintf("no credentials were found for %s: set the registry-username and registry-password inputs or run docker login %s", reg, reg)
	}
}

// statusOf returns the HTTP status of a registry error, or 0.
func statusOf(err error) int {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return 0
	}
	for _, d := range terr.Errors {
		switch d.Code {
		case transport.UnauthorizedErrorCode:
			return http.StatusUnauthorized
		case transport.DeniedErrorCode:
			if terr.StatusCode == http.StatusUnauthorized {
				return http.StatusUnauthorized
			}
			return http.StatusForbidden
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
			return http.StatusNotFound
		}
	}
	return terr.StatusCode
}

// networkCause returns a short description of a network failure in err, or
// "".
func networkCause(err error) string {
	var cerr *tls.CertificateVerificationError
	if errors.As(err, &cerr) {
		return "TLS certificate not trusted (" + cerr.Err.Error() + "); name the registry insecure if it uses a self-signed certificate"
	}
	var uerr x509.UnknownAuthorityError
	if errors.As(err, &uerr) {
		return "TLS certificate signed by an unknown authority; name the registry insecure if it uses a self-signed certificate"
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return "the registry answers plain HTTP; name it insecure to allow that"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return ""
}

// scrubbed is an error whose message has had the client's secrets removed.
// It deliberately does not unwrap to the original, whose message has them.
type scrubbed struct{ msg string }

func (s *scrubbed) Error() string { return s.msg }

// scrub returns err with every known secret replaced by "***" in its message.
func (c *Client) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	c.mu.Lock()
	changed := false
	for s := range c.secrets {
		if strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "***")
			changed = true
		}
	}
	c.mu.Unlock()
	if !changed {
		return err
	}
	return &scrubbed{msg: msg}
}
