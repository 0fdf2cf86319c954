package findings

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Severity ranks a finding. The zero value is SeverityUnknown; higher values
// are more severe, so severities compare with < and >.
type Severity int

// The severities, in increasing order.
const (
	SeverityUnknown Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

// Severities lists every severity from the least to the most severe.
func Severities() []Severity {
	return []Severity{SeverityUnknown, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}
}

// String returns the upper-case name of s ("HIGH"), as Trivy and the inputs
// spell it.
func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return "Severity(" + strconv.Itoa(int(s)) + ")"
	}
	return severityNames[s]
}

// ParseSeverity parses a severity name, ignoring case and surrounding space.
func ParseSeverity(s string) (Severity, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	for i, n := range severityNames {
		if n == name {
			return Severity(i), nil
		}
	}
	return SeverityUnknown, fmt.Errorf("parsing severity %q: want one of %s", s, strings.Join(severityNames[:], ", "))
}

// ParseSeverities parses a comma or newline separated list of severity names
// ("CRITICAL,HIGH"); empty items are skipped and duplicates removed. The result
// is sorted from the most to the least severe.
func ParseSeverities(s string) ([]Severity, error) {
	var out []Severity
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		if strings.TrimSpace(f) == "" {
			continue
		}
		sev, err := ParseSeverity(f)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, sev) {
			out = append(out, sev)
		}
	}
	slices.SortFunc(out, func(a, b Severity) int { return cmp.Compare(b, a) })
	return out, nil
}

// MarshalText encodes s as its name.
func (s Severity) MarshalText() ([]byte, error) {
	if s < 0 || int(s) >= len(severityNames) {
		return nil, fmt.Errorf("encoding severity: invalid value %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Kind says what sort of problem a finding is.
type Kind string

// The kinds of findings.
const (
	KindVulnerability Kind = "vulnerability"
	KindSecret        Kind = "secret"
	KindMisconfig     Kind = "misconfig"
)

// Origin says whether a finding comes from the base image or from this build.
type Origin string

// The origins of findings.
const (
	// OriginBase marks a finding in a layer of the base image (FROM), or in an
	// image whose build ship does not know.
	OriginBase Origin = "base"
	// OriginBuild marks a finding in a layer this build created.
	OriginBuild Origin = "build"
)

// Status classifies a finding against a previous image (see Diff). It is
// empty when there is nothing to compare to.
type Status string

// The statuses of a compared finding.
const (
	StatusNew       Status = "new"
	StatusFixed     Status = "fixed"
	StatusUnchanged Status = "unchanged"
)

// Location is a place in the user's repository: the Dockerfile line of the
// instruction that caused a finding, or a source file copied into the image.
type Location struct {
	// Path is slash separated, relative to the repository or build context
	// as the build reports it (e.g. "Dockerfile", "app/requirements.txt").
	Path string `json:"path"`
	// Line is 1-based; 0 means the line is not known.
	Line int `json:"line"`
}

// String returns "path:line", "path" without a line, or "" for the zero
// Location.
func (l Location) String() string {
	if l.Path == "" {
		return ""
	}
	if l.Line <= 0 {
		return l.Path
	}
	return l.Path + ":" + strconv.Itoa(l.Line)
}

// IsZero reports whether l points nowhere.
func (l Location) IsZero() bool { return l.Path == "" && l.Line == 0 }

// Finding is one problem found in an image: a vulnerable package, a secret or
// a misconfiguration, with where it came from.
type Finding struct {
	// ID is the advisory (CVE-2024-1234, GHSA-...) or the rule ID (aws-access-key-id).
	ID       string   `json:"id"`
	Kind     Kind     `json:"kind"`
	Severity Severity `json:"severity"`
	// Package, InstalledVersion and FixedVersion describe a vulnerable
	// package; FixedVersion is empty when no fix exists.
	Package          string `json:"package"`
	InstalledVersion string `json:"installed_version"`
	FixedVersion     string `json:"fixed_version"`
	Title            string `json:"title"`
	Description      string `json:"description,omitempty"`
	PrimaryURL       string `json:"primary_url,omitempty"`
	// Layer is the digest of the layer that introduced the finding, as the
	// manifest lists it; DiffID is the same layer's uncompressed digest.
	Layer  string `json:"layer"`
	DiffID string `json:"diff_id,omitempty"`
	// LayerIndex is the position of that layer in the image, from 0; -1
	// when unknown.
	LayerIndex int    `json:"layer_index"`
	Origin     Origin `json:"origin"`
	// Location is the cause in the repository: a Dockerfile line, or the
	// source file (and line) a COPY/ADD brought in.
	Location Location `json:"location"`
	// Instruction is the instruction that created the layer ("RUN apt-get
	// install ..."); empty for base image layers.
	Instruction string `json:"instruction,omitempty"`
	// Path is the file inside the image the finding was read from (lock
	// file, package metadata, file with a secret), slash separated and
	// without a leading slash; empty for OS packages.
	Path string `json:"path,omitempty"`
	// Target is the scanner's own name for what it scanned (Trivy's target).
	Target string `json:"target,omitempty"`
	// Status is set by Diff; empty without a comparison.
	Status Status `json:"status,omitempty"`
}

// Key identifies a finding across images for Diff: kind, ID, package and
// path in the image. Versions, layers and locations are left out so that a
// finding that merely moved (a rebuilt layer, a shifted line, an upgrade that
// did not fix it) is the same finding.
func (f Finding) Key() string {
	return strings.Join([]string{string(f.Kind), f.ID, f.Package, f.Path}, "\x00")
}

// Sort orders findings for stable output: most severe first, then by kind,
// ID, package, path and location.
func Sort(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(b.Severity, a.Severity),
			cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.ID, b.ID),
			cmp.Compare(a.Package, b.Package),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.InstalledVersion, b.InstalledVersion),
			cmp.Compare(a.Location.Path, b.Location.Path),
			cmp.Compare(a.Location.Line, b.Location.Line),
		)
	})
}

// Summary counts findings.
type Summary struct {
	Total      int              `json:"total"`
	BySeverity map[Severity]int `json:"by_severity"`
	ByOrigin   map[Origin]int   `json:"by_origin"`
	ByKind     map[Kind]int     `json:"by_kind"`
}

// Summarize counts fs per severity, origin and kind. Findings with status
// fixed are not counted: they are no longer in the image. Every severity has
// an entry, zero included, so outputs always list all of them.
func Summarize(fs []Finding) Summary {
	s := Summary{
		BySeverity: make(map[Severity]int),
		ByOrigin:   map[Origin]int{OriginBase: 0, OriginBuild: 0},
		ByKind:     make(map[Kind]int),
	}
	for _, sev := range Severities() {
		s.BySeverity[sev] = 0
	}
	for _, f := range fs {
		if f.Status == StatusFixed {
			continue
		}
		s.Total++
		s.BySeverity[f.Severity]++
		s.ByOrigin[f.Origin]++
		s.ByKind[f.Kind]++
	}
	return s
}
