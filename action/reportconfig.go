package action

import (
	"fmt"
	"path"
	"strings"

	"github.com/intesys/ship-action/internal/report/markdown"
)

// The values of the comment input.
const (
	commentAlways    = "true"
	commentNever     = "false"
	commentOnFailure = "on-failure"
)

// DefaultSARIFFile is where the SARIF log goes by default, relative to the
// working directory.
const DefaultSARIFFile = "ship.sarif"

// reportInputs describes the inputs of the reports (issue 5).
func reportInputs() []Input {
	return []Input{
		{
			Name: "check-name", Kind: KindString,
			Description: "Name of the GitHub check run (default: ship / <image repository>, or ship / <Dockerfile> without tags).",
			field:       func(c *Config) any { return &c.CheckName },
		},
		{
			Name: "comment", Kind: KindString, Default: commentAlways,
			Description: "Comment on the pull request: true, false or on-failure. One comment per image, updated in place on every push.",
			field:       func(c *Config) any { return &c.Comment },
			validate: func(c *Config) error {
				switch c.Comment {
				case commentAlways, commentNever, commentOnFailure:
					return nil
				}
				return fmt.Errorf("invalid comment value %q: want true, false or on-failure", c.Comment)
			},
		},
		{
			Name: "sarif-file", Kind: KindString, Default: DefaultSARIFFile,
			Description: "Path of the SARIF 2.1.0 log of the findings, for GitHub code scanning (written when the image is scanned).",
			field:       func(c *Config) any { return &c.SARIFFile },
		},
		{
			Name: "upload-sarif", Kind: KindBool, Default: "false",
			Description: "Upload the SARIF log to GitHub code scanning (needs security-events: write); otherwise github/codeql-action/upload-sarif can upload the file.",
			field:       func(c *Config) any { return &c.UploadSARIF },
		},
		{
			Name: "max-annotations", Kind: KindInt, Default: "200",
			Description: "Most annotations on the check run (findings on one line count once); the summary says how many were left out. 0: no cap.",
			field:       func(c *Config) any { return &c.MaxAnnotations },
		},
		{
			Name: "fail-on-report-error", Kind: KindBool, Default: "false",
			Description: "Fail the run (exit code 1) when a report cannot be delivered (check run, comment, SARIF upload); by default a warning.",
			field:       func(c *Config) any { return &c.FailOnReportError },
		},
	}
}

// checkName returns the check run's name: check-name, else "ship / " and
// the first tag's repository, else the Dockerfile's path.
func (c Config) checkName() string {
	if c.CheckName != "" {
		return c.CheckName
	}
	if c.ScanImage != "" {
		return "ship / " + markdown.Repository(c.ScanImage)
	}
	if len(c.Tags) > 0 {
		if t, err := parseTag(c.Tags[0]); err == nil {
			return "ship / " + t.Context().Name()
		}
	}
	return "ship / " + path.Clean(strings.TrimPrefix(dockerfilePath(c), "./"))
}

// commentWanted says whether the comment input (true, false, on-failure)
// asks for the pull or merge request comment of rep.
func commentWanted(mode string, rep markdown.Report) bool {
	switch mode {
	case commentNever:
		return false
	case commentOnFailure:
		v := rep.Verdict()
		return v == markdown.StatusFailed || v == markdown.StatusBuildFailed
	}
	return true
}
