package sarif

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	gosarif "github.com/owenrumney/go-sarif/v2/sarif"

	"github.com/intesys/ship-action/internal/findings"
)

// fingerprintKey names ship's partial fingerprint (versioned: a change of
// what it hashes must change the name).
const fingerprintKey = "shipFinding/v1"

// informationURI is the tool's home page in the log.
const informationURI = "https://github.com/intesys/ship-action"

// Input is what a SARIF log is made of.
type Input struct {
	// Image names the scanned image (a reference), Digest its digest.
	Image, Digest string
	// Findings are written in the order given.
	Findings []findings.Finding
	// ToolVersion is ship's version ("" when unknown).
	ToolVersion string
}

// Write writes in as a SARIF 2.1.0 log to w.
func Write(w io.Writer, in Input) error {
	rep, err := gosarif.New(gosarif.Version210)
	if err != nil {
		return fmt.Errorf("writing SARIF: %w", err)
	}
	run := gosarif.NewRunWithInformationURI("ship", informationURI)
	if in.ToolVersion != "" {
		v := in.ToolVersion
		run.Tool.Driver.Version = &v
	}
	props := gosarif.NewPropertyBag()
	if in.Image != "" {
		props.Add("image", in.Image)
	}
	if in.Digest != "" {
		props.Add("digest", in.Digest)
	}
	run.AttachPropertyBag(props)

	seen := map[string]bool{}
	for _, f := range in.Findings {
		if !seen[f.ID] {
			seen[f.ID] = true
			addRule(run, f)
		}
		run.AddResult(result(f))
	}
	rep.AddRun(run)
	if err := rep.PrettyWrite(w); err != nil {
		return fmt.Errorf("writing SARIF: %w", err)
	}
	return nil
}

// addRule describes the rule of f (its advisory or secret rule).
func addRule(run *gosarif.Run, f findings.Finding) {
	short := f.Title
	if short == "" {
		short = f.ID
	}
	full := f.Description
	if full == "" {
		full = short
	}
	rule := run.AddRule(f.ID).
		WithName(ruleName(f)).
		WithShortDescription(gosarif.NewMultiformatMessageString(short)).
		WithFullDescription(gosarif.NewMultiformatMessageString(full)).
		WithHelp(gosarif.NewMultiformatMessageString(helpText(f)).WithMarkdown(helpMarkdown(f))).
		WithDefaultConfiguration(gosarif.NewReportingConfiguration().WithLevel(level(f.Severity)))
	if f.PrimaryURL != "" {
		rule.WithHelpURI(f.PrimaryURL)
	}
	rule.WithProperties(gosarif.Properties{
		"security-severity": securitySeverity(f.Severity),
		"precision":         "very-high",
		"tags":              []string{"security", string(f.Kind), f.Severity.String()},
	})
}

// result is the SARIF result of f.
func result(f findings.Finding) *gosarif.Result {
	r := gosarif.NewRuleResult(f.ID).
		WithLevel(level(f.Severity)).
		WithMessage(gosarif.NewTextMessage(message(f)))
	if loc := f.Location; loc.Path != "" {
		region := gosarif.NewRegion().WithStartLine(max(loc.Line, 1))
		r.AddLocation(gosarif.NewLocationWithPhysicalLocation(gosarif.NewPhysicalLocation().
			WithArtifactLocation(gosarif.NewSimpleArtifactLocation(loc.Path)).
			WithRegion(region)))
	}
	sum := sha256.Sum256([]byte(f.Key()))
	r.WithPartialFingerPrints(map[string]any{fingerprintKey: hex.EncodeToString(sum[:])})
	props := gosarif.NewPropertyBag()
	props.Add("origin", string(f.Origin))
	if f.Layer != "" {
		props.Add("layer", f.Layer)
	}
	if f.Instruction != "" {
		props.Add("instruction", f.Instruction)
	}
	if f.Path != "" {
		props.Add("path", f.Path)
	}
	if f.Status != "" {
		props.Add("status", string(f.Status))
	}
	r.AttachPropertyBag(props)
	return r
}

// level maps a severity to a SARIF level.
func level(s findings.Severity) string {
	switch s {
	case findings.SeverityCritical, findings.SeverityHigh:
		return "error"
	case findings.SeverityMedium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the score code scanning ranks an alert by.
func securitySeverity(s findings.Severity) string {
	switch s {
	case findings.SeverityCritical:
		return "9.5"
	case findings.SeverityHigh:
		return "8.0"
	case findings.SeverityMedium:
		return "5.5"
	case findings.SeverityLow:
		return "2.0"
	}
	return "0.0"
}

// ruleName names the kind of rule.
func ruleName(f findings.Finding) string {
	switch f.Kind {
	case findings.KindSecret:
		return "Secret"
	case findings.KindMisconfig:
		return "Misconfiguration"
	}
	return "Vulnerability"
}

// message is one line about f: what, where it came from, what fixes it.
func message(f findings.Finding) string {
	var b strings.Builder
	switch f.Kind {
	case findings.KindSecret:
		fmt.Fprintf(&b, "%s: %s", f.Severity, titleOr(f))
		if f.Path != "" {
			fmt.Fprintf(&b, " in /%s", f.Path)
		}
	case findings.KindMisconfig:
		fmt.Fprintf(&b, "%s: %s", f.Severity, titleOr(f))
	default:
		fmt.Fprintf(&b, "%s: %s in %s %s", f.Severity, f.ID, f.Package, f.InstalledVersion)
		if f.FixedVersion != "" {
			fmt.Fprintf(&b, " (fixed in %s)", f.FixedVersion)
		} else {
			b.WriteString(" (no fix yet)")
		}
	}
	switch {
	case f.Origin == findings.OriginBase:
		b.WriteString("; from the base image")
	case f.Instruction != "":
		fmt.Fprintf(&b, "; added by %s", f.Instruction)
	}
	return b.String()
}

func titleOr(f findings.Finding) string {
	if f.Title != "" {
		return f.Title
	}
	return f.ID
}

// helpText is the rule's help as plain text.
func helpText(f findings.Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s)", titleOr(f), f.Severity)
	if f.Package != "" {
		fmt.Fprintf(&b, "\nPackage: %s %s", f.Package, f.InstalledVersion)
		if f.FixedVersion != "" {
			fmt.Fprintf(&b, ", fixed in %s", f.FixedVersion)
		}
	}
	if f.PrimaryURL != "" {
		fmt.Fprintf(&b, "\n%s", f.PrimaryURL)
	}
	return b.String()
}

// helpMarkdown is the rule's help as Markdown.
func helpMarkdown(f findings.Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** (%s)\n\n", titleOr(f), f.Severity)
	if f.Package != "" {
		fmt.Fprintf(&b, "| Package | Installed | Fixed |\n|---|---|---|\n| %s | %s | %s |\n\n", f.Package, f.InstalledVersion, orDash(f.FixedVersion))
	}
	if f.Description != "" {
		fmt.Fprintf(&b, "%s\n\n", f.Description)
	}
	if f.PrimaryURL != "" {
		fmt.Fprintf(&b, "[%s](%s)\n", f.ID, f.PrimaryURL)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
