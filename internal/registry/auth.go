package registry

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Credential sources, as CredentialSource reports them and errors name them.
const (
	SourceExplicit     = "explicit registry-username input"
	SourceGitHubToken  = "GITHUB_TOKEN"
	SourceGitLab       = "CI_REGISTRY_USER"
	SourceDockerConfig = "docker config"
	SourceAnonymous    = "anonymous"
)

// ghcrRegistry is the only registry the GitHub token is sent to.
const ghcrRegistry = "ghcr.io"

// resolved is a credential chosen for one registry.
type resolved struct {
	auth   authn.Authenticator
	source string
}

// CredentialSource says which source provides the credentials for registry
// (a host with an optional port; "docker.io" is accepted): one of
// SourceExplicit, SourceGitHubToken, SourceGitLab, SourceDockerConfig or
// SourceAnonymous. A docker config that cannot be read reports
// SourceAnonymous.
func (c *Client) CredentialSource(registry string) string {
	reg, err := normalizeRegistry(registry)
	if err != nil {
		return SourceAnonymous
	}
	r, err := c.resolve(reg, c.pushRegistries)
	if err != nil {
		return SourceAnonymous
	}
	return r.source
}

// resolve picks the credential for registry reg (normalized), in order:
// explicit > GitHub token (ghcr.io) > CI_REGISTRY_* (that host) > docker
// config (with helpers) > anonymous. pushRegs are the registries that
// registry-less explicit credentials apply to.
func (c *Client) resolve(reg string, pushRegs map[string]bool) (resolved, error) {
	for _, cr := range c.opts.explicit {
		if cr.registry == reg || (cr.registry == "" && pushRegs[reg]) {
			return resolved{auth: &authn.Basic{Username: cr.username, Password: cr.password}, source: SourceExplicit}, nil
		}
	}
	if reg == ghcrRegistry && c.opts.githubToken != "" {
		user, ok := c.opts.lookup("GITHUB_ACTOR")
		if !ok || user == "" {
			user = "x-access-token"
		}
		return resolved{auth: &authn.Basic{Username: user, Password: c.opts.githubToken}, source: SourceGitHubToken}, nil
	}
	if c.gitlab.registry != "" && c.gitlab.registry == reg {
		return resolved{auth: &authn.Basic{Username: c.gitlab.username, Password: c.gitlab.password}, source: SourceGitLab}, nil
	}
	cfg, err := c.dockerConfig()
	if err != nil {
		return resolved{}, err
	}
	if cfg != nil {
		key := reg
		if reg == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		ac, err := cfg.GetAuthConfig(key)
		if err != nil {
			return resolved{}, fmt.Errorf("reading credentials for %s from the docker config in %s: %w", reg, c.dockerConfigDir(), err)
		}
		if ac.Username != "" || ac.Password != "" || ac.Auth != "" || ac.IdentityToken != "" || ac.RegistryToken != "" {
			for _, s := range []string{ac.Password, ac.Auth, ac.IdentityToken, ac.RegistryToken} {
				c.addSecret(s)
			}
			return resolved{auth: authn.FromConfig(authn.AuthConfig{
				Username:      ac.Username,
				Password:      ac.Password,
				Auth:          ac.Auth,
				IdentityToken: ac.IdentityToken,
				RegistryToken: ac.RegistryToken,
			}), source: SourceDockerConfig}, nil
		}
	}
	return resolved{auth: authn.Anonymous, source: SourceAnonymous}, nil
}

// dockerConfigDir is the directory whose config.json is read.
func (c *Client) dockerConfigDir() string {
	if c.opts.dockerConfigDir != "" {
		return c.opts.dockerConfigDir
	}
	if d, ok := c.opts.lookup("DOCKER_CONFIG"); ok && d != "" {
		return d
	}
	home, ok := c.opts.lookup("HOME")
	if !ok || home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return ""
		}
	}
	return filepath.Join(home, ".docker")
}

// dockerConfig loads config.json once; nil when there is none.
func (c *Client) dockerConfig() (*configfile.ConfigFile, error) {
	c.cfgOnce.Do(func() {
		dir := c.dockerConfigDir()
		if dir == "" {
			return
		}
		if _, err := os.Stat(filepath.Join(dir, config.ConfigFileName)); err != nil {
			return
		}
		cfg, err := config.Load(dir)
		if err != nil {
			c.cfgErr = fmt.Errorf("reading docker config: %w", err)
			return
		}
		c.cfg = cfg
	})
	return c.cfg, c.cfgErr
}

// addSecret remembers a secret so errors can be scrubbed of it, and masks it
// once.
func (c *Client) addSecret(s string) {
	if s == "" {
		return
	}
	c.mu.Lock()
	_, seen := c.secrets[s]
	if !seen {
		c.secrets[s] = struct{}{}
	}
	c.mu.Unlock()
	if !seen {
		c.opts.mask(s)
	}
}
