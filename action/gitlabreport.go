package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/report/gitlab"
	"github.com/intesys/ship-action/internal/report/markdown"
	"github.com/intesys/ship-action/internal/scan"
)

// The report files of a run on GitLab, in the working directory: the
// component declares them as the job's artifacts:reports.
const (
	containerScanningFile = "gl-container-scanning-report.json"
	codeQualityFile       = "gl-code-quality-report.json"
	// gitlabSBOMFile is the CycloneDX SBOM (artifacts:reports:cyclonedx), a
	// copy of sbom-file when sbom is cyclonedx.
	gitlabSBOMFile = "gl-sbom-report.cdx.json"
)

// trivyModule is the module whose version names the scanner in reports.
const trivyModule = "github.com/aquasecurity/trivy"

// gitlabInputs describes the inputs only GitLab reads.
func gitlabInputs() []Input {
	return []Input{
		{
			Name: "gitlab-token", Kind: KindString, Secret: true,
			Description: "Token for the merge request note (comment input): a project or group access token with the api scope and at least the Reporter role. " +
				"CI_JOB_TOKEN cannot write notes. Unset, no note is written.",
			field: func(c *Config) any { return &c.GitLabToken },
		},
	}
}

// gitlabReporter delivers a run's reports on GitLab: the report files the
// job's artifacts declare and the merge request note. Only a file that
// cannot be written is an error; a note that cannot be written warns, and
// fails the run only with fail-on-report-error.
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
// Markdown report. For a scanned image: the container scanning and code
// quality reports (and the CycloneDX SBOM); for a build that failed at a
// Dockerfile line: a code quality report with that line. Then the merge
// request note.
func (g *gitlabReporter) finish(ctx context.Context, rec *runRecord, md markdown.Report, failAt findings.Location) error {
	var errs []error
	if err := g.writeReports(rec, md, failAt); err != nil {
		// A failed run returns its own error: say it here.
		g.log.Warn("writing the GitLab reports", "error", err.Error())
		errs = append(errs, withCode(CodeInternal, err))
	}
	if err := g.note(ctx, md); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// writeReports writes the report files of rec.
func (g *gitlabReporter) writeReports(rec *runRecord, md markdown.Report, failAt findings.Location) error {
	var written []string
	switch {
	case rec.sc != nil:
		shown := sarifFindings(rec.sc.reported)
		cs, err := gitlab.ContainerScanning(g.containerScanningInput(rec, shown))
		if err != nil {
			return err
		}
		if err := writeFileAtomic(g.path(containerScanningFile), cs); err != nil {
			return err
		}
		cq, err := gitlab.CodeQuality(shown)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(g.path(codeQualityFile), cq); err != nil {
			return err
		}
		written = append(written, containerScanningFile, codeQualityFile)
		copied, err := g.copySBOM(rec)
		if err != nil {
			return err
		}
		if copied {
			written = append(written, gitlabSBOMFile)
		}
	case md.BuildError != nil && !failAt.IsZero():
		cq, err := gitlab.BuildFailure(failAt, md.BuildError.Message)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(g.path(codeQualityFile), cq); err != nil {
			return err
		}
		written = append(written, codeQualityFile)
	}
	if len(written) > 0 {
		g.log.Info("GitLab reports written", "files", strings.Join(written, ","))
	}
	return nil
}

// containerScanningInput gathers what the container scanning report of
// rec's scan shows.
func (g *gitlabReporter) containerScanningInput(rec *runRecord, shown []findings.Finding) gitlab.Input {
	end := time.Now()
	in := gitlab.Input{Image: g.scannedImage(rec), Findings: shown, Start: end, End: end}
	if res := rec.sc.result; res != nil {
		in.OS = res.OS
		in.Start = end.Add(-res.Stats.Duration)
	}
	// The image compared to is the default branch's when the merge request
	// targets it: GitLab then matches the findings of both.
	target := g.env("CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
	if rec.sc.comparedTo != "" && target != "" && target == g.env("CI_DEFAULT_BRANCH") {
		in.DefaultBranchImage = rec.sc.comparedTo
	}
	in.ShipVersion, in.TrivyVersion = buildVersions()
	return in
}

// scannedImage names the scanned image in the container scanning report:
// the image ship scan read, else the first tag, else repository@digest
// (the digest alone without tags).
func (g *gitlabReporter) scannedImage(rec *runRecord) string {
	switch {
	case g.cfg.ScanImage != "":
		return g.cfg.ScanImage
	case len(g.cfg.Tags) > 0:
		return g.cfg.Tags[0]
	case rec.out != nil:
		return rec.out.Image
	}
	return ""
}

// copySBOM copies a CycloneDX SBOM the scan wrote to gitlabSBOMFile, the
// name the component declares as artifacts:reports:cyclonedx (sbom-file
// keeps its own default, which suits both formats). It reports whether it
// did.
func (g *gitlabReporter) copySBOM(rec *runRecord) (bool, error) {
	if rec.out == nil || rec.out.Scan == nil || rec.out.Scan.SBOM == "" {
		return false, nil
	}
	if f, err := scan.ParseSBOMFormat(g.cfg.SBOM); err != nil || f != scan.SBOMCycloneDX {
		return false, nil
	}
	src, dst := rec.out.Scan.SBOM, g.path(gitlabSBOMFile)
	if samePath(src, dst) {
		return true, nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return false, fmt.Errorf("copying the SBOM for GitLab: %w", err)
	}
	return true, writeFileAtomic(dst, b)
}

// path is where the report file name goes.
func (g *gitlabReporter) path(name string) string {
	return filepath.Join(g.workDir, name)
}

// note writes the Markdown report as the merge request's note when the
// pipeline is one of a merge request and the comment input asks for it.
// The error is nil unless the note could not be written and
// fail-on-report-error is set.
func (g *gitlabReporter) note(ctx context.Context, md markdown.Report) error {
	iid := g.env("CI_MERGE_REQUEST_IID")
	if iid == "" || !commentWanted(g.cfg.Comment, md) {
		return nil
	}
	if g.cfg.GitLabToken == "" {
		g.log.Info("no gitlab-token: no merge request note; to have one, set gitlab-token to a project access token with the api scope (CI_JOB_TOKEN cannot write notes)")
		return nil
	}
	err := g.upsertNote(ctx, iid, md)
	if err == nil {
		g.log.Info("merge request note written", "merge_request", "!"+iid)
		return nil
	}
	var ne *gitlab.NoteError
	if errors.As(err, &ne) {
		g.log.Warn(fmt.Sprintf("GitLab merge request note skipped: %v; the job log and the job's reports have the findings", err))
	} else {
		g.log.Warn(fmt.Sprintf("GitLab merge request note skipped: %v", err))
	}
	if g.cfg.FailOnReportError {
		return withCode(CodeInternal, fmt.Errorf("reporting to GitLab failed (fail-on-report-error): %w", err))
	}
	return nil
}

// upsertNote writes md as the note of merge request iid that carries the
// image's marker.
func (g *gitlabReporter) upsertNote(ctx context.Context, iid string, md markdown.Report) error {
	n, err := strconv.Atoi(iid)
	if err != nil {
		return fmt.Errorf("CI_MERGE_REQUEST_IID %q is not a number", iid)
	}
	client, err := gitlab.NewNoteClient(g.env("CI_API_V4_URL"), g.env("CI_PROJECT_ID"), g.cfg.GitLabToken, nil)
	if err != nil {
		return err
	}
	body, err := markdown.Comment(md)
	if err != nil {
		return err
	}
	_, err = client.Upsert(ctx, n, markdown.Marker(md.Image), body)
	return err
}

// samePath reports whether a and b name the same file.
func samePath(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// buildVersions returns ship's version and Trivy's, from the binary's
// build information ("" when unknown).
func buildVersions() (ship, trivy string) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "", ""
	}
	if v := info.Main.Version; v != "(devel)" {
		ship = strings.TrimPrefix(v, "v")
	}
	for _, d := range info.Deps {
		if d.Path == trivyModule {
			if d.Replace != nil {
				d = d.Replace
			}
			trivy = strings.TrimPrefix(d.Version, "v")
		}
	}
	return ship, trivy
}
