package action

import (
	"log/slog"
	"time"

	"github.com/intesys/ship-action/internal/build"
	"github.com/intesys/ship-action/internal/report/markdown"
)

// startPrune trims the build caches in cfg.CacheDir to cache-max-size in
// the background, keeping what this run (started at start) used; the
// channel is closed when it is done. Failures are warnings: the run's
// result does not depend on them.
func startPrune(cfg Config, start time.Time, log *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	limit, _ := parseSize(cfg.CacheMaxSize) // checked by Validate
	if limit < 0 {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		st, err := build.PruneCache(cfg.CacheDir, limit, start)
		switch {
		case err != nil:
			log.Warn("trimming the cache failed", "dir", cfg.CacheDir, "err", err)
		case st.Removed > 0 || st.After > limit:
			log.Info("cache trimmed", "dir", cfg.CacheDir, "removed", st.Removed, "before", markdown.HumanSize(st.Before),
				"after", markdown.HumanSize(st.After), "limit", cfg.CacheMaxSize, "in_use_elsewhere", st.Busy)
		default:
			log.Debug("cache within its limit", "dir", cfg.CacheDir, "size", markdown.HumanSize(st.After), "limit", cfg.CacheMaxSize)
		}
	}()
	return done
}
