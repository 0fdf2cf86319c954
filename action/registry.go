package action

import (
	"fmt"
	"log/slog"

	"github.com/intesys/ship-action/internal/registry"
)

// newRegistryClient makes the registry client for cfg: explicit credentials
// for the registries of the tags, the GitHub token for ghcr.io, insecure
// registries and the docker.io mirror.
func newRegistryClient(cfg Config, lookup LookupEnv, log *slog.Logger, mask func(string)) (*registry.Client, error) {
	opts := []registry.Option{
		registry.WithEnv(lookup),
		registry.WithLogger(log),
		registry.WithMasker(mask),
		registry.WithPushTags(cfg.Tags...),
		registry.WithCredentials("", cfg.RegistryUsername, cfg.RegistryPassword),
		registry.WithInsecure(cfg.InsecureRegistries...),
	}
	if cfg.GitHubToken != "" {
		opts = append(opts, registry.WithGitHubToken(cfg.GitHubToken))
	}
	if cfg.RegistryMirror != "" {
		opts = append(opts, registry.WithMirrors(cfg.RegistryMirror))
	}
	c, err := registry.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating registry client: %w", err)
	}
	return c, nil
}
