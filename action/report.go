package action

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sethvargo/go-githubactions"

	"github.com/intesys/ship-action/internal/build"
	"github.com/intesys/ship-action/internal/dockerfile"
	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/report/markdown"
)

// runRecord is what a run has to report, filled in as it goes: a failed
// build leaves the later parts nil.
type runRecord struct {
	res *build.Result // the build; nil for ship scan or when it failed
	img v1.Image      // the image scanned by ship scan
	out *Outputs      // nil until the image is built (or read) and handled
	sc  *scanOutcome  // nil without a scan
}

// image returns the image as reports name it.
func (r *runRecord) image() v1.Image {
	if r.res != nil {
		return r.res.Image
	}
	return r.img
}

// reports delivers a run's result where it is read: the outputs, the job
// summary and the GitHub check run, comment and SARIF upload on GitHub,
// the dotenv file on GitLab, the JSON line on stdout.
type reports struct {
	cfg      Config
	o        options
	gha      *githubactions.Action
	env      func(string) string
	log      *slog.Logger
	onGitHub bool
	onGitLab bool
	github   *githubReporter // nil off GitHub
	gitlab   *gitlabReporter // nil off GitLab
}

// startReports prepares the reports of a run and, on GitHub, creates the
// check run (in progress) while the build goes on.
func startReports(ctx context.Context, cfg Config, o options, gha *githubactions.Action, env func(string) string, log *slog.Logger) *reports {
	r := &reports{
		cfg: cfg, o: o, gha: gha, env: env, log: log,
		onGitHub: env("GITHUB_ACTIONS") == "true",
		onGitLab: env("GITLAB_CI") == "true",
	}
	if r.onGitHub {
		r.github = newGitHubReporter(ctx, cfg, env, log, o.stdout)
		r.github.start(ctx)
	}
	if r.onGitLab {
		r.gitlab = newGitLabReporter(cfg, env, log, o.workDir)
	}
	return r
}

// finish writes every report of the run that ended with runErr and returns
// the run's error: runErr, else the gate's verdict, else a report that
// could not be delivered when fail-on-report-error is set.
func (r *reports) finish(ctx context.Context, rec *runRecord, runErr error) error {
	var errs []error
	if runErr == nil && rec.out != nil {
		if r.onGitHub {
			if err := writeGitHubOutputs(r.gha, r.env, *rec.out); err != nil {
				errs = append(errs, withCode(CodeInternal, err))
			}
		}
		if r.onGitLab {
			if err := writeDotenv(r.o.workDir, *rec.out); err != nil {
				errs = append(errs, withCode(CodeInternal, err))
			}
		}
	}
	if r.onGitHub {
		md := markdownReport(r.cfg, rec, runErr, runURL(r.env))
		if err := writeJobSummary(r.gha, r.env, md, rec.out); err != nil {
			errs = append(errs, withCode(CodeInternal, err))
		}
		if err := r.github.finish(ctx, md, failureLocation(r.cfg, runErr), r.sarifBytes(rec)); err != nil {
			errs = append(errs, err)
		}
	}
	if r.onGitLab {
		md := markdownReport(r.cfg, rec, runErr, r.env("CI_JOB_URL"))
		if err := r.gitlab.finish(ctx, rec, md, failureLocation(r.cfg, runErr)); err != nil {
			errs = append(errs, err)
		}
	}
	if runErr != nil {
		return runErr // the first cause; report failures were logged
	}
	if rec.out != nil {
		if err := writeJSONLine(r.o.stdout, *rec.out); err != nil {
			errs = append([]error{withCode(CodeInternal, err)}, errs...)
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	if rec.sc != nil {
		return gateError(r.cfg, rec.sc.gate)
	}
	return nil
}

// sarifBytes returns the SARIF log written by the scan, nil when there is
// none.
func (r *reports) sarifBytes(rec *runRecord) []byte {
	if rec.out == nil || rec.out.Scan == nil || rec.out.Scan.sarif == nil {
		return nil
	}
	return rec.out.Scan.sarif
}

// runURL is the page of the workflow run on GitHub, "" when unknown.
func runURL(env func(string) string) string {
	repo, id := env("GITHUB_REPOSITORY"), env("GITHUB_RUN_ID")
	if repo == "" || id == "" {
		return ""
	}
	return githubServer(env) + "/" + repo + "/actions/runs/" + id
}

// githubServer is the GitHub server's URL (GITHUB_SERVER_URL, else
// https://github.com), without a trailing slash.
func githubServer(env func(string) string) string {
	return strings.TrimSuffix(cmp.Or(env("GITHUB_SERVER_URL"), "https://github.com"), "/")
}

// markdownReport gathers what the Markdown reports show of a run that
// ended with runErr.
func markdownReport(cfg Config, rec *runRecord, runErr error, reportURL string) markdown.Report {
	rep := markdown.Report{Image: reportImage(cfg), ReportURL: reportURL}
	if rec.out != nil {
		rep.Digest = rec.out.Digest
		rep.Tags = rec.out.Tags
		rep.Size = rec.out.Metadata.Size
		for _, p := range rec.out.Metadata.Platforms {
			rep.Platforms = append(rep.Platforms, markdown.Platform{Name: p.Platform, Digest: p.Digest})
		}
	}
	rep.Layers = reportLayers(rec, cfg)
	if sc := rec.sc; sc != nil {
		rep.Findings = sc.reported
		rep.Compared = sc.comparedTo
		rep.Gate = markdown.Gate{FailOn: cfg.policy().FailOn, Failed: sc.gate}
	}
	if runErr != nil {
		rep.BuildError = &markdown.BuildError{Message: runErr.Error()}
		if loc := failureLocation(cfg, runErr); !loc.IsZero() {
			rep.BuildError.Location = loc.String()
		}
	}
	return rep
}

// failureLocation is the Dockerfile line a run failed at, zero when the
// error points at none.
func failureLocation(cfg Config, runErr error) findings.Location {
	var de *dockerfile.Error
	if cfg.ScanImage != "" || !errors.As(runErr, &de) || de.Location.Line <= 0 {
		return findings.Location{}
	}
	return findings.Location{Path: dockerfilePath(cfg), Line: de.Location.Line}
}

// reportImage names the image in reports: the first tag, the image ship
// scan read, else the Dockerfile.
func reportImage(cfg Config) string {
	switch {
	case cfg.ScanImage != "":
		return cfg.ScanImage
	case len(cfg.Tags) > 0:
		return cfg.Tags[0]
	}
	return dockerfilePath(cfg)
}

// reportLayers lists the image's layers with the instruction that made
// each (for a build) and its compressed size.
func reportLayers(rec *runRecord, cfg Config) []markdown.Layer {
	img := rec.image()
	if img == nil {
		return nil
	}
	m, err := img.Manifest()
	if err != nil {
		return nil
	}
	// The build describes its layers by diff ID (the digest is only known
	// once a layer is compressed); the config lists the diff IDs in the
	// manifest's order.
	var diffIDs []v1.Hash
	if cf, err := img.ConfigFile(); err == nil {
		diffIDs = cf.RootFS.DiffIDs
	}
	info := map[v1.Hash]build.LayerInfo{}
	if rec.res != nil {
		for _, l := range rec.res.Layers {
			info[l.DiffID] = l
		}
	}
	out := make([]markdown.Layer, 0, len(m.Layers))
	for i, d := range m.Layers {
		l := markdown.Layer{Size: d.Size, Base: rec.res == nil}
		if i >= len(diffIDs) {
			out = append(out, l)
			continue
		}
		if li, ok := info[diffIDs[i]]; ok {
			l.Instruction, l.Base = li.Instruction, li.Base
			if li.Location.Line > 0 {
				l.Location = fmt.Sprintf("%s:%d", dockerfilePath(cfg), li.Location.Line)
			}
		}
		out = append(out, l)
	}
	return out
}

// sarifFindings are the findings the SARIF log and the annotations show:
// those reported and still in the image.
func sarifFindings(fs []findings.Finding) []findings.Finding {
	var out []findings.Finding
	for _, f := range fs {
		if f.Status != findings.StatusFixed {
			out = append(out, f)
		}
	}
	return out
}
