package action

import (
	"log/slog"

	"github.com/intesys/ship-action/internal/build"
	"github.com/intesys/ship-action/internal/registry"
	ghreport "github.com/intesys/ship-action/internal/report/github"
)

// cacheInputs describes the inputs of the layer cache in a registry.
func cacheInputs() []Input {
	return []Input{
		{
			Name: "no-cache-filters", Kind: KindList, Alias: "no-cache-filter",
			Description: "Stages (names or indexes) whose RUN instructions run again instead of coming from the layer cache, newline or comma separated; the others still use it.",
			field:       func(c *Config) any { return &c.NoCacheFilter },
		},
		{
			Name: "cache-repo", Kind: KindString,
			Description: "Image repository that holds the layer cache, shared by every machine (e.g. ghcr.io/org/app/cache): " +
				"RUN layers built before are reused from it, new ones are stored in it while the build goes on. " +
				"Needs push access; a pull or merge request from a fork only reads it.",
			field: func(c *Config) any { return &c.CacheRepo },
		},
		{
			Name: "cache-read-only", Kind: KindBool, Default: "false",
			Description: "Only read the layer cache of cache-repo, never write to it.",
			field:       func(c *Config) any { return &c.CacheReadOnly },
		},
	}
}

// layerCacher gives the layer cache held in a repository;
// *registry.Client is one.
type layerCacher interface {
	LayerCache(repo string) (*registry.LayerCache, error)
}

// layerStoreOptions returns the build options of cache-repo: the layer
// store, read-only when asked or when the run builds a fork's pull or
// merge request (its token should not write to the cache the base
// repository's builds trust).
func layerStoreOptions(cfg Config, client imageClient, env func(string) string, log *slog.Logger) []build.Option {
	if cfg.CacheRepo == "" {
		return nil
	}
	lc, ok := client.(layerCacher)
	if !ok {
		log.Warn("cache-repo is not supported by this registry client: no layer cache in the registry")
		return nil
	}
	store, err := lc.LayerCache(cfg.CacheRepo)
	if err != nil {
		log.Warn("cache-repo: no layer cache in the registry", "error", err.Error())
		return nil
	}
	readOnly := cfg.CacheReadOnly
	if !readOnly && fromFork(env) {
		log.Info("building a pull or merge request from a fork: the layer cache of cache-repo is only read", "cache_repo", cfg.CacheRepo)
		readOnly = true
	}
	return []build.Option{build.WithLayerStore(store, readOnly)}
}

// fromFork reports whether the run builds a pull request (GitHub) or
// merge request (GitLab) whose source is another repository.
func fromFork(env func(string) string) bool {
	if src, proj := env("CI_MERGE_REQUEST_SOURCE_PROJECT_ID"), env("CI_MERGE_REQUEST_PROJECT_ID"); src != "" && proj != "" {
		return src != proj
	}
	return ghreport.FromFork(env("GITHUB_EVENT_PATH"))
}
