package action

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/intesys/ship-action/internal/findings"
	ghreport "github.com/intesys/ship-action/internal/report/github"
	"github.com/intesys/ship-action/internal/report/markdown"
)

// githubReporter sends a run's result to the GitHub API: the check run
// (created in progress when the run starts, completed with annotations at
// the end), the pull request comment and the SARIF upload. Without a token,
// or when the token may not create the check run (a pull request from a
// fork), the annotations go out as workflow commands instead. No failure
// here fails the run unless fail-on-report-error is set.
type githubReporter struct {
	cfg    Config
	api    *ghreport.Client // nil: no token or repository
	log    *slog.Logger
	stdout io.Writer // workflow commands
	sha    string    // the commit the check run belongs on
	pr     int       // the pull request, 0 when the event is none
	ref    string    // the ref SARIF is uploaded for

	started sync.WaitGroup // the check run's creation
	checkID int64          // 0: no check run

	mu       sync.Mutex
	warned   map[string]bool // permissions already warned about
	failures []error         // channels that could not deliver
}

// newGitHubReporter reads the GitHub environment: token, repository, API
// URL, and the event payload for the head commit and pull request.
func newGitHubReporter(ctx context.Context, cfg Config, env func(string) string, log *slog.Logger, stdout io.Writer) *githubReporter {
	r := &githubReporter{cfg: cfg, log: log, stdout: stdout, warned: map[string]bool{}}
	sha, pr, err := ghreport.HeadSHA(env("GITHUB_EVENT_PATH"), env("GITHUB_SHA"))
	if err != nil {
		log.Warn("reading the GitHub event: reporting on GITHUB_SHA", "error", err.Error())
		sha, pr = env("GITHUB_SHA"), 0
	}
	r.sha, r.pr = sha, pr
	r.ref = env("GITHUB_REF")
	if pr > 0 {
		r.ref = "refs/pull/" + strconv.Itoa(pr) + "/head"
	}
	switch {
	case cfg.GitHubToken == "":
		log.Info("no github-token: findings are reported as workflow-command annotations and in the job summary")
	case env("GITHUB_REPOSITORY") == "":
		log.Warn("GITHUB_REPOSITORY is not set: no check run, comment or SARIF upload")
	default:
		api, err := ghreport.New(ctx,
			ghreport.WithToken(cfg.GitHubToken),
			ghreport.WithBaseURL(env("GITHUB_API_URL")),
			ghreport.WithRepository(env("GITHUB_REPOSITORY")),
			ghreport.WithLogger(log))
		if err != nil {
			log.Warn("reporting to GitHub: no API client", "error", err.Error())
			r.failures = append(r.failures, err)
			break
		}
		r.api = api
	}
	return r
}

// start creates the check run, in progress, in the background.
func (r *githubReporter) start(ctx context.Context) {
	if r.api == nil || r.sha == "" {
		return
	}
	r.started.Add(1)
	go func() {
		defer r.started.Done()
		id, err := r.api.StartCheck(ctx, r.cfg.checkName(), r.sha)
		if err != nil {
			r.failed("check run", err)
			return
		}
		r.checkID = id
	}()
}

// finish completes the check run (or writes workflow-command annotations),
// comments on the pull request and uploads the SARIF log. failAt is where
// a failed run failed. The error is nil unless a channel failed and
// fail-on-report-error is set.
func (r *githubReporter) finish(ctx context.Context, rep markdown.Report, failAt findings.Location, sarif []byte) error {
	r.started.Wait()
	summary, err := markdown.Summary(rep)
	if err != nil {
		return withCode(CodeInternal, err)
	}
	shown := sarifFindings(rep.Findings)
	anns, _ := ghreport.Annotations(shown, 0)
	if rep.BuildError != nil && !failAt.IsZero() {
		anns = append([]ghreport.Annotation{ghreport.BuildFailureAnnotation(failAt, rep.BuildError.Message)}, anns...)
	}
	delivered := false
	if r.checkID != 0 {
		err := r.api.FinishCheck(ctx, r.checkID, ghreport.ConclusionOf(rep.Verdict()), markdown.Title(rep), summary, anns, r.cfg.MaxAnnotations)
		if err != nil {
			r.failed("check run", err)
		} else {
			delivered = true
			r.log.Info("check run completed", "name", r.cfg.checkName(), "annotations", min(len(anns), capOr(r.cfg.MaxAnnotations, len(anns))))
		}
	}
	if !delivered {
		r.workflowCommands(shown, anns, rep.BuildError != nil && !failAt.IsZero())
	}
	if r.wantComment(rep) {
		body, err := markdown.Comment(rep)
		if err != nil {
			return withCode(CodeInternal, err)
		}
		if _, err := r.api.UpsertComment(ctx, r.pr, markdown.Marker(rep.Image), body); err != nil {
			r.failed("pull request comment", err)
		} else {
			r.log.Info("pull request comment written", "pull_request", r.pr)
		}
	}
	if r.cfg.UploadSARIF {
		switch {
		case sarif == nil:
			// nothing scanned
		case r.api == nil:
			r.log.Warn("upload-sarif needs github-token: the SARIF file is left for github/codeql-action/upload-sarif")
		default:
			if _, err := r.api.UploadSARIF(ctx, r.ref, r.sha, sarif); err != nil {
				r.failed("SARIF upload", err)
			} else {
				r.log.Info("SARIF uploaded to code scanning", "ref", r.ref)
			}
		}
	}
	if len(r.failures) > 0 && r.cfg.FailOnReportError {
		return withCode(CodeInternal, fmt.Errorf("reporting to GitHub failed (fail-on-report-error): %w", errors.Join(r.failures...)))
	}
	return nil
}

// capOr returns max, or n when max is 0 (no cap).
func capOr(max, n int) int {
	if max == 0 {
		return n
	}
	return max
}

// wantComment says whether the run comments on a pull request: there is
// one, a client, and the comment input asks for it.
func (r *githubReporter) wantComment(rep markdown.Report) bool {
	return r.pr != 0 && r.api != nil && commentWanted(r.cfg.Comment, rep)
}

// workflowCommands writes the annotations as workflow commands: the build
// failure first when there is one (anns[0]), then those of the findings.
func (r *githubReporter) workflowCommands(fs []findings.Finding, anns []ghreport.Annotation, buildFailure bool) {
	var lines []string
	if buildFailure {
		lines = append(lines, ghreport.WorkflowCommand(anns[0]))
	}
	lines = append(lines, ghreport.WorkflowCommands(fs)...)
	if len(lines) == 0 {
		return
	}
	if _, err := io.WriteString(r.stdout, strings.Join(lines, "\n")+"\n"); err != nil {
		r.log.Warn("writing workflow-command annotations", "error", err.Error())
	}
}

// failed records that channel could not deliver and warns: once per
// missing permission, naming it, or once per other failure.
func (r *githubReporter) failed(channel string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, err)
	fallback := "the job summary has the report"
	if channel == "check run" {
		fallback = "annotations go out as workflow commands and the job summary has the report"
	}
	var pe *ghreport.PermissionError
	if errors.As(err, &pe) {
		if r.warned[pe.Permission] {
			return
		}
		r.warned[pe.Permission] = true
	}
	r.log.Warn(fmt.Sprintf("GitHub %s skipped: %v; %s", channel, err, fallback))
}
