package action

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/intesys/ship-action/internal/findings"
)

// ScanOutputs are the scan's outputs: counts of the reported findings per
// severity (fixed ones, from compare-to, not counted), by origin, and the
// files written.
type ScanOutputs struct {
	Critical     int    `json:"critical"`
	High         int    `json:"high"`
	Medium       int    `json:"medium"`
	Low          int    `json:"low"`
	Unknown      int    `json:"unknown"`
	Total        int    `json:"total"`
	Base         int    `json:"base"`  // findings from the base image
	Build        int    `json:"build"` // findings from this build's layers
	Failed       int    `json:"failed"`
	FindingsJSON string `json:"findings_json,omitempty"`
	SARIF        string `json:"sarif,omitempty"`
	SBOM         string `json:"sbom,omitempty"`

	sarif []byte // the SARIF log written to SARIF
}

// newScanOutputs counts the reported findings of sc.
func newScanOutputs(sc *scanOutcome, files scanFiles) *ScanOutputs {
	s := findings.Summarize(sc.reported)
	return &ScanOutputs{
		Critical:     s.BySeverity[findings.SeverityCritical],
		High:         s.BySeverity[findings.SeverityHigh],
		Medium:       s.BySeverity[findings.SeverityMedium],
		Low:          s.BySeverity[findings.SeverityLow],
		Unknown:      s.BySeverity[findings.SeverityUnknown],
		Total:        s.Total,
		Base:         s.ByOrigin[findings.OriginBase],
		Build:        s.ByOrigin[findings.OriginBuild],
		Failed:       len(sc.gate),
		FindingsJSON: files.findings,
		SARIF:        files.sarif,
		SBOM:         files.sbom,
		sarif:        files.sarifLog,
	}
}

// outputPairs returns the scan outputs as name/value pairs, in the order
// the GitHub outputs and the dotenv file list them.
func (s *ScanOutputs) outputPairs() [][2]string {
	return [][2]string{
		{"critical", fmt.Sprint(s.Critical)},
		{"high", fmt.Sprint(s.High)},
		{"medium", fmt.Sprint(s.Medium)},
		{"low", fmt.Sprint(s.Low)},
		{"unknown", fmt.Sprint(s.Unknown)},
		{"findings-json", s.FindingsJSON},
		{"sarif-file", s.SARIF},
		{"sbom", s.SBOM},
	}
}

// isTerminal reports whether w is a character device (a TTY).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// severityColor returns the ANSI colour of a severity.
func severityColor(s findings.Severity) string {
	switch s {
	case findings.SeverityCritical:
		return "\x1b[1;31m"
	case findings.SeverityHigh:
		return "\x1b[31m"
	case findings.SeverityMedium:
		return "\x1b[33m"
	case findings.SeverityLow:
		return "\x1b[36m"
	}
	return "\x1b[2m"
}

// writeFindingsTable writes the reported findings for a person: grouped by
// location (Dockerfile:LINE or file:line; "base image" or the image path
// when unknown), each line severity, ID, package, installed -> fixed.
// Colours only when color is set.
func writeFindingsTable(w io.Writer, fs []findings.Finding, color bool) error {
	if len(fs) == 0 {
		_, err := io.WriteString(w, "No findings.\n")
		return err
	}
	groups := map[string][]findings.Finding{}
	var order []string
	for _, f := range fs {
		k := groupName(f)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], f)
	}
	worst := func(k string) findings.Severity {
		m := findings.SeverityUnknown
		for _, f := range groups[k] {
			m = max(m, f.Severity)
		}
		return m
	}
	slices.SortStableFunc(order, func(a, b string) int {
		// The same location's findings share a Location: order files by
		// path, then lines by number (settings.conf:2 before :10).
		la, lb := groups[a][0].Location, groups[b][0].Location
		return cmp.Or(cmp.Compare(worst(b), worst(a)), cmp.Compare(la.Path, lb.Path), cmp.Compare(la.Line, lb.Line), cmp.Compare(a, b))
	})
	var b strings.Builder
	for _, k := range order {
		fmt.Fprintf(&b, "%s\n", k)
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, f := range groups[k] {
			sev := f.Severity.String()
			pad := strings.Repeat(" ", len("CRITICAL")-len(sev))
			if color {
				sev = severityColor(f.Severity) + sev + "\x1b[0m"
			}
			versions := f.InstalledVersion
			if f.Kind == findings.KindVulnerability {
				fixed := f.FixedVersion
				if fixed == "" {
					fixed = "(no fix)"
				}
				versions += " -> " + fixed
			}
			status := ""
			if f.Status != "" {
				status = "[" + string(f.Status) + "]"
			}
			fmt.Fprintf(tw, "  %s%s\t%s\t%s\t%s\t%s\n", sev, pad, f.ID, f.Package, versions, status)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	// Empty last columns leave padding: trim it.
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	b.Reset()
	b.WriteString(strings.Join(lines, "\n"))
	s := findings.Summarize(fs)
	var counts []string
	for _, sev := range slices.Backward(findings.Severities()) {
		counts = append(counts, fmt.Sprintf("%s %d", sev, s.BySeverity[sev]))
	}
	fmt.Fprintf(&b, "%d findings (%s; base image %d, this build %d)\n", s.Total, strings.Join(counts, ", "),
		s.ByOrigin[findings.OriginBase], s.ByOrigin[findings.OriginBuild])
	_, err := io.WriteString(w, b.String())
	return err
}

// groupName names the group of a finding in the table.
func groupName(f findings.Finding) string {
	switch {
	case !f.Location.IsZero() && f.Origin == findings.OriginBase:
		return f.Location.String() + " (base image)"
	case !f.Location.IsZero():
		return f.Location.String()
	case f.Path != "":
		return "/" + strings.TrimPrefix(f.Path, "/")
	case f.Origin == findings.OriginBase:
		return "base image"
	}
	return "image"
}
