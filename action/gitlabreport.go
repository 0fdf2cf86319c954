package action

import (
	"context"
	"log/slog"

	"github.com/intesys/ship-action/internal/report/markdown"
)

// gitlabInputs describes the inputs only GitLab reads.
func gitlabInputs() []Input { return nil }

// gitlabReporter delivers a run's reports on GitLab: the report files the
// job's artifacts declare and the merge request note.
type gitlabReporter struct {
	cfg     Config
	env     func(string) string
	log     *slog.Logger
	workDir string
}

// newGitLabReporter prepares the GitLab reports of a run.
func newGitLabReporter(cfg Config, env func(string) string, log *slog.Logger, workDir string) *gitlabReporter {
	return &gitlabReporter{cfg: cfg, env: env, log: log, workDir: workDir}
}

// finish writes the reports of the run recorded in rec; md is its
// Markdown report.
func (g *gitlabReporter) finish(ctx context.Context, rec *runRecord, md markdown.Report) error {
	return nil
}
