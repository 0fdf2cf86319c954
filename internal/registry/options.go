package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Option configures a Client.
type Option func(*options) error

type options struct {
	explicit        []credential
	githubToken     string
	lookup          func(string) (string, bool)
	dockerConfigDir string
	insecure        []string
	mirrors         []string
	pushTags        []string
	transport       http.RoundTripper
	logger          *slog.Logger
	mask            func(secret string)
	backoff         remote.Backoff
}

// credential is one explicit username/password pair; registry "" applies to
// the registries of the pushed tags.
type credential struct {
	registry           string
	username, password string
}

// defaultOptions holds every default in one place.
func defaultOptions() options {
	return options{
		lookup: os.LookupEnv,
		logger: slog.New(slog.DiscardHandler),
		mask:   func(string) {},
		// Four tries: waits of about 1s, 2s and 4s between them.
		backoff: remote.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 4},
	}
}

// WithCredentials adds an explicit username and password (the
// registry-username and registry-password inputs) for registry, a host with
// an optional port ("ghcr.io", "registry.example:5000"). An empty registry
// applies them to the registries of the pushed tags (see WithPushTags and
// Client.Push). Explicit credentials take precedence over every other
// source. An empty username and password adds nothing.
func WithCredentials(registry, username, password string) Option {
	return func(o *options) error {
		if username == "" && password == "" {
			return nil
		}
		if username == "" {
			return errors.New("registry-password is set but registry-username is empty")
		}
		if password == "" {
			return fmt.Errorf("registry-username %q is set but registry-password is empty", username)
		}
		reg := ""
		if registry != "" {
			var err error
			if reg, err = normalizeRegistry(registry); err != nil {
				return err
			}
		}
		o.explicit = append(o.explicit, credential{registry: reg, username: username, password: password})
		return nil
	}
}

// WithGitHubToken sets the GitHub token used for ghcr.io, with GITHUB_ACTOR
// (or "x-access-token" when it is unset) as the username.
func WithGitHubToken(token string) Option {
	return func(o *options) error {
		o.githubToken = token
		return nil
	}
}

// WithEnv sets how environment variables are read: CI_REGISTRY,
// CI_REGISTRY_USER, CI_REGISTRY_PASSWORD, GITHUB_ACTOR, DOCKER_CONFIG and
// HOME. The default is os.LookupEnv.
func WithEnv(lookup func(string) (string, bool)) Option {
	return func(o *options) error {
		if lookup == nil {
			return errors.New("nil environment lookup")
		}
		o.lookup = lookup
		return nil
	}
}

// WithDockerConfigDir sets the directory holding config.json. The default is
// $DOCKER_CONFIG, else ~/.docker. Credential helpers (credsStore,
// credHelpers) configured there are used as docker does.
func WithDockerConfigDir(dir string) Option {
	return func(o *options) error {
		o.dockerConfigDir = dir
		return nil
	}
}

// WithInsecure names registries (HOST or HOST:PORT) that may be reached over
// plain HTTP or over TLS without certificate verification. Every other
// registry is verified. A HOST without a port matches any port.
func WithInsecure(hosts ...string) Option {
	return func(o *options) error {
		for _, h := range hosts {
			h = strings.TrimSpace(h)
			if h == "" {
				continue
			}
			reg, err := normalizeRegistry(h)
			if err != nil {
				return fmt.Errorf("insecure registry: %w", err)
			}
			o.insecure = append(o.insecure, reg)
		}
		return nil
	}
}

// WithMirrors sets registry mirrors for docker.io: a docker.io reference is
// tried at each mirror in order, then at docker.io. A mirror is a HOST[:PORT],
// optionally with an https:// or http:// prefix; http:// also marks it
// insecure.
func WithMirrors(hosts ...string) Option {
	return func(o *options) error {
		for _, h := range hosts {
			h = strings.TrimSpace(h)
			if h == "" {
				continue
			}
			reg, err := normalizeRegistry(h)
			if err != nil {
				return fmt.Errorf("registry mirror: %w", err)
			}
			if strings.HasPrefix(strings.ToLower(h), "http://") {
				o.insecure = append(o.insecure, reg)
			}
			o.mirrors = append(o.mirrors, reg)
		}
		return nil
	}
}

// WithPushTags names the tags that will be pushed, so that explicit
// credentials without a registry also apply when base images are pulled
// from those registries before the push.
func WithPushTags(tags ...string) Option {
	return func(o *options) error {
		o.pushTags = append(o.pushTags, tags...)
		return nil
	}
}

// WithTransport sets the HTTP transport (e.g. one trusting a test CA). For
// insecure registries a copy that skips verification is used when rt is an
// *http.Transport.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) error {
		if rt == nil {
			return errors.New("nil transport")
		}
		o.transport = rt
		return nil
	}
}

// WithLogger sets the logger for credential choices, mirror fallbacks and
// pushes. No secret is ever logged.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithMasker sets a function called once for every secret credential the
// client uses (GitHub's AddMask), before it is used.
func WithMasker(mask func(secret string)) Option {
	return func(o *options) error {
		if mask == nil {
			return errors.New("nil masker")
		}
		o.mask = mask
		return nil
	}
}

// withBackoff sets the retry backoff (tests use a fast one).
func withBackoff(b remote.Backoff) Option {
	return func(o *options) error {
		o.backoff = b
		return nil
	}
}

// normalizeRegistry turns "https://Docker.io/v1/", "docker.io" or
// "registry.example:5000" into ggcr's registry string ("index.docker.io",
// "registry.example:5000").
func normalizeRegistry(s string) (string, error) {
	h := strings.TrimSpace(strings.ToLower(s))
	h = strings.TrimPrefix(h, "https://")
	h = strings.TrimPrefix(h, "http://")
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	switch h {
	case "docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		h = name.DefaultRegistry
	}
	reg, err := name.NewRegistry(h, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("parsing registry %q: %w", s, err)
	}
	return reg.RegistryStr(), nil
}
