package action

import (
	"log/slog"
	"time"

	"github.com/intesys/ship-action/internal/gitcommit"
)

// ciSourceDateEpoch is the SOURCE_DATE_EPOCH a CI run builds with when
// none is set: on GitHub and GitLab the commit time of the checkout's
// HEAD (GitLab's CI_COMMIT_TIMESTAMP, else read from the context's .git),
// so that the same commit gives the same image on any machine. Locally,
// or when the context is not a git checkout, nil (real times).
func ciSourceDateEpoch(cfg Config, env func(string) string, log *slog.Logger) *time.Time {
	if cfg.SourceDateEpoch != nil {
		return cfg.SourceDateEpoch
	}
	onGitLab := env("GITLAB_CI") == "true"
	if env("GITHUB_ACTIONS") != "true" && !onGitLab {
		return nil
	}
	if ts := env("CI_COMMIT_TIMESTAMP"); onGitLab && ts != "" {
		if t, err := time.Parse(time.RFC3339, ts); err == nil && t.Unix() >= 0 {
			t = t.UTC()
			log.Info("SOURCE_DATE_EPOCH: the commit time (CI_COMMIT_TIMESTAMP), for a reproducible image", "time", t.Format(time.RFC3339))
			return &t
		}
	}
	t, commit, err := gitcommit.HeadTime(cfg.Context)
	if err != nil {
		log.Debug("SOURCE_DATE_EPOCH not set and no commit time: real times", "reason", err.Error())
		return nil
	}
	if t.Unix() < 0 {
		return nil
	}
	log.Info("SOURCE_DATE_EPOCH: the commit time of HEAD, for a reproducible image", "commit", commit, "time", t.Format(time.RFC3339))
	return &t
}
