package gitlab

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/intesys/ship-action/internal/findings"
)

// SchemaVersion is the container scanning report schema version declared.
const SchemaVersion = "15.0.7"

// timeLayout is the report's time format (UTC, no zone).
const timeLayout = "2006-01-02T15:04:05"

// Input is what the reports are made of.
type Input struct {
	// Image is the scanned image as pushed (a reference with tag or digest);
	// DefaultBranchImage the same repository's image of the default branch,
	// when known.
	Image, DefaultBranchImage string
	// OS is the detected operating system ("debian 12.5"); "" when none.
	OS       string
	Findings []findings.Finding
	// Start and End bound the scan.
	Start, End time.Time
	// ShipVersion and TrivyVersion name the analyzer and the scanner.
	ShipVersion, TrivyVersion string
}

type vendor struct {
	Name string `json:"name"`
}

type tool struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	URL     string `json:"url,omitempty"`
	Version string `json:"version"`
	Vendor  vendor `json:"vendor"`
}

type scanInfo struct {
	Analyzer  tool   `json:"analyzer"`
	Scanner   tool   `json:"scanner"`
	Type      string `json:"type"`
	StartTime string `json:"start_time"`
	EndTime   string `json:"end_time"`
	Status    string `json:"status"`
}

type identifier struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
	URL   string `json:"url,omitempty"`
}

type link struct {
	URL string `json:"url"`
}

type dependency struct {
	Package struct {
		Name string `json:"name"`
	} `json:"package"`
	Version string `json:"version"`
}

type location struct {
	Dependency         dependency `json:"dependency"`
	OperatingSystem    string     `json:"operating_system"`
	Image              string     `json:"image"`
	DefaultBranchImage string     `json:"default_branch_image,omitempty"`
}

type vulnerability struct {
	ID          string       `json:"id"`
	Name        string       `json:"name,omitempty"`
	Description string       `json:"description,omitempty"`
	Severity    string       `json:"severity"`
	Solution    string       `json:"solution,omitempty"`
	Identifiers []identifier `json:"identifiers"`
	Links       []link       `json:"links,omitempty"`
	Location    location     `json:"location"`
}

type containerScanning struct {
	Version         string          `json:"version"`
	Scan            scanInfo        `json:"scan"`
	Vulnerabilities []vulnerability `json:"vulnerabilities"`
	Remediations    []any           `json:"remediations"`
}

// ContainerScanning returns the container scanning report of in.
func ContainerScanning(in Input) ([]byte, error) {
	rep := containerScanning{
		Version: SchemaVersion,
		Scan: scanInfo{
			Analyzer:  tool{ID: "ship", Name: "ship", URL: "https://github.com/intesys/ship-action", Version: orUnknown(in.ShipVersion), Vendor: vendor{Name: "intesys"}},
			Scanner:   tool{ID: "trivy", Name: "Trivy", URL: "https://github.com/aquasecurity/trivy", Version: orUnknown(in.TrivyVersion), Vendor: vendor{Name: "Aqua Security"}},
			Type:      "container_scanning",
			StartTime: in.Start.UTC().Format(timeLayout),
			EndTime:   in.End.UTC().Format(timeLayout),
			Status:    "success",
		},
		Vulnerabilities: []vulnerability{},
		Remediations:    []any{},
	}
	osName := in.OS
	if osName == "" {
		osName = "unknown"
	}
	image := in.Image
	if image == "" {
		image = "unknown"
	}
	for _, f := range in.Findings {
		if f.Kind != findings.KindVulnerability || f.Package == "" {
			continue
		}
		v := vulnerability{
			ID:          stableID(repository(in.Image), f.Key()),
			Name:        fmt.Sprintf("%s in %s", f.ID, f.Package),
			Description: description(f),
			Severity:    severity(f.Severity),
			Identifiers: []identifier{{Type: identifierType(f.ID), Name: f.ID, Value: f.ID, URL: f.PrimaryURL}},
			Location: location{
				OperatingSystem:    osName,
				Image:              image,
				DefaultBranchImage: truncate(in.DefaultBranchImage, 255),
			},
		}
		if f.FixedVersion != "" {
			v.Solution = fmt.Sprintf("Upgrade %s to %s", f.Package, f.FixedVersion)
		}
		if f.PrimaryURL != "" {
			v.Links = []link{{URL: f.PrimaryURL}}
		}
		v.Location.Dependency.Package.Name = f.Package
		v.Location.Dependency.Version = f.InstalledVersion
		rep.Vulnerabilities = append(rep.Vulnerabilities, v)
	}
	out, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("writing container scanning report: %w", err)
	}
	return out, nil
}

type cqLines struct {
	Begin int `json:"begin"`
}

type cqLocation struct {
	Path  string  `json:"path"`
	Lines cqLines `json:"lines"`
}

type cqIssue struct {
	Description string     `json:"description"`
	CheckName   string     `json:"check_name"`
	Fingerprint string     `json:"fingerprint"`
	Severity    string     `json:"severity"`
	Location    cqLocation `json:"location"`
	Categories  []string   `json:"categories,omitempty"`
	Type        string     `json:"type,omitempty"`
}

// CodeQuality returns the code quality report of the findings that have a
// location in the repository.
func CodeQuality(fs []findings.Finding) ([]byte, error) {
	issues := []cqIssue{}
	for _, f := range fs {
		if f.Location.Path == "" {
			continue
		}
		issues = append(issues, cqIssue{
			Description: oneLine(f),
			CheckName:   f.ID,
			Fingerprint: stableHex(f.Key() + "\x00" + f.Location.Path),
			Severity:    codeQualitySeverity(f.Severity),
			Location:    cqLocation{Path: f.Location.Path, Lines: cqLines{Begin: max(f.Location.Line, 1)}},
			Categories:  []string{"Security"},
			Type:        "issue",
		})
	}
	out, err := json.MarshalIndent(issues, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("writing code quality report: %w", err)
	}
	return out, nil
}

// severity maps a severity to the container scanning report's names.
func severity(s findings.Severity) string {
	switch s {
	case findings.SeverityCritical:
		return "Critical"
	case findings.SeverityHigh:
		return "High"
	case findings.SeverityMedium:
		return "Medium"
	case findings.SeverityLow:
		return "Low"
	}
	return "Unknown"
}

// codeQualitySeverity maps a severity to the code quality report's names.
func codeQualitySeverity(s findings.Severity) string {
	switch s {
	case findings.SeverityCritical:
		return "critical"
	case findings.SeverityHigh:
		return "major"
	case findings.SeverityMedium:
		return "minor"
	}
	return "info"
}

// identifierType is "cve" for CVE ids, "ghsa" for GitHub advisories and
// the id's prefix in lower case otherwise.
func identifierType(id string) string {
	prefix, _, ok := strings.Cut(id, "-")
	if !ok || prefix == "" {
		return "trivy"
	}
	return strings.ToLower(prefix)
}

func description(f findings.Finding) string {
	d := f.Description
	if d == "" {
		d = f.Title
	}
	return d
}

// oneLine describes f for a code quality entry.
func oneLine(f findings.Finding) string {
	var b strings.Builder
	switch f.Kind {
	case findings.KindVulnerability:
		fmt.Fprintf(&b, "%s %s in %s %s", f.Severity, f.ID, f.Package, f.InstalledVersion)
		if f.FixedVersion != "" {
			fmt.Fprintf(&b, " (fixed in %s)", f.FixedVersion)
		}
	default:
		title := f.Title
		if title == "" {
			title = f.ID
		}
		fmt.Fprintf(&b, "%s %s: %s", f.Severity, f.Kind, title)
	}
	if f.Origin == findings.OriginBase {
		b.WriteString(", from the base image")
	} else if f.Instruction != "" {
		fmt.Fprintf(&b, ", added by %s", f.Instruction)
	}
	return b.String()
}

// stableID formats a UUID-shaped id from a hash of the parts.
func stableID(parts ...string) string {
	h := stableHex(strings.Join(parts, "\x00"))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func stableHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// repository is image without its tag or digest.
func repository(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
