package markdown

import (
	"embed"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/intesys/ship-action/internal/findings"
)

//go:embed templates/*.md.tmpl
var templateFS embed.FS

// TopFindings is how many findings a report lists before the collapsible
// rest.
const TopFindings = 10

// DetailsLimit is how many more findings the collapsible rest lists; the
// others are counted and left to the full report, so that a comment stays
// under the size GitHub and GitLab accept.
const DetailsLimit = 200

// Report is what a Markdown report is made of.
type Report struct {
	// Image is the image reference as pushed (or built), Digest its
	// manifest digest, Tags the tags pushed.
	Image, Digest string
	Tags          []string
	// Size is the image's compressed size in bytes (0 when unknown).
	Size int64
	// Platforms are the images of a multi-platform index (Digest is the
	// index's); Layers and Findings are the first platform's.
	Platforms []Platform
	// Layers lists the image's layers, base layers first.
	Layers []Layer
	// Findings are the reported findings (after the policy's filter); with
	// Compared set, they carry a Status and the fixed ones are included.
	Findings []findings.Finding
	// Compared is the reference compared to ("" when none).
	Compared string
	// Gate is the gate's verdict.
	Gate Gate
	// BuildError is set when the build failed.
	BuildError *BuildError
	// ReportURL links to the full report (the run's page), optional.
	ReportURL string
}

// Platform is one platform's image in a multi-platform index.
type Platform struct {
	Name   string // e.g. linux/arm64
	Digest string // the image's manifest digest
}

// Layer is one layer of the image.
type Layer struct {
	// Instruction made the layer ("RUN apt-get install ...", or "FROM
	// debian:12" for base layers).
	Instruction string
	// Location is where the instruction is ("Dockerfile:3").
	Location string
	// Size is the compressed size in bytes.
	Size int64
	// Base is true for layers of the base image.
	Base bool
}

// Gate is the verdict of the policy's gate.
type Gate struct {
	// FailOn lists the severities that fail the run; empty means report
	// only.
	FailOn []findings.Severity
	// Failed lists the findings that failed the run.
	Failed []findings.Finding
}

// BuildError describes a failed build.
type BuildError struct {
	// Location is the failing instruction's place ("Dockerfile:5"), if
	// known.
	Location string
	// Message is the error.
	Message string
}

// Status is the one-word verdict of a report.
type Status string

// The verdicts.
const (
	StatusPassed      Status = "passed"
	StatusFailed      Status = "failed"
	StatusBuildFailed Status = "build failed"
	StatusReportOnly  Status = "report only"
)

// Verdict returns the report's status: build failed, failed (the gate
// failed), passed (a gate was set and nothing failed it) or report only.
func (r Report) Verdict() Status {
	switch {
	case r.BuildError != nil:
		return StatusBuildFailed
	case len(r.Gate.Failed) > 0:
		return StatusFailed
	case len(r.Gate.FailOn) > 0:
		return StatusPassed
	}
	return StatusReportOnly
}

// Title is a one-line title with the counts, for a check run: "failed: 7
// findings fail the run (CRITICAL); 31 findings: 7 CRITICAL, 6 HIGH" or
// "build failed at Dockerfile:5".
func Title(r Report) string {
	st := r.Verdict()
	if r.BuildError != nil {
		if r.BuildError.Location != "" {
			return string(st) + " at " + r.BuildError.Location
		}
		return string(st)
	}
	v := newView(r)
	var b strings.Builder
	b.WriteString(string(st))
	if v.Failed > 0 {
		fmt.Fprintf(&b, ": %s the run (%s)", plural(v.Failed, "finding fails", "findings fail"), v.FailOn)
	}
	if v.Total == 0 {
		b.WriteString("; no findings")
		return b.String()
	}
	var counts []string
	for _, row := range v.Rows {
		counts = append(counts, fmt.Sprintf("%d %s", row.Build+row.Base, row.Severity))
	}
	fmt.Fprintf(&b, "; %s: %s", plural(v.Total, "finding", "findings"), strings.Join(counts, ", "))
	if r.Compared != "" {
		fmt.Fprintf(&b, " (%d new, %d fixed)", v.New, v.Fixed)
	}
	return b.String()
}

// Marker returns the hidden HTML comment that identifies the comment of
// image (its tag and digest are dropped, so every run of one image finds
// the same comment).
func Marker(image string) string {
	return "<!-- ship:image=" + Repository(image) + " -->"
}

// Repository returns image without its tag or digest.
func Repository(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// Comment renders r as a pull request (or merge request) comment: Marker
// of the image, then the report.
func Comment(r Report) (string, error) {
	return render("comment", r)
}

// Summary renders r as a job or check run summary: the report without the
// marker.
func Summary(r Report) (string, error) {
	return render("summary", r)
}

// Truncate returns s when it has at most max bytes; otherwise s cut at the
// last line boundary that leaves room for note, followed by note. The
// result never exceeds max bytes (the note itself is cut when max is
// smaller than it).
func Truncate(s string, max int, note string) string {
	if len(s) <= max {
		return s
	}
	if note != "" && !strings.HasPrefix(note, "\n") {
		note = "\n" + note
	}
	if len(note) >= max {
		return cutUTF8(note, max)
	}
	// The newline ending the last whole line may sit just past the room.
	i := strings.LastIndex(s[:max-len(note)+1], "\n")
	if i < 0 {
		return strings.TrimPrefix(note, "\n")
	}
	return s[:i] + note
}

// cutUTF8 returns at most n bytes of s, not splitting a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// view is what the templates see.
type view struct {
	Marker     string
	R          Report
	Repository string
	Status     Status
	Failed     int
	FailOn     string
	Total      int
	Build      int
	Base       int
	Rows       []sevRow
	New, Fixed int
	Top        []row
	Rest       []row
	Hidden     int
	FixedRows  []row
	LayerSize  int64
}

type sevRow struct {
	Severity    string
	Build, Base int
}

type row struct {
	Severity string
	ID       string
	URL      string
	Package  string
	Fix      string
	Where    string
	Origin   string
	New      bool
	Title    string
}

func newView(r Report) view {
	v := view{
		Marker:     Marker(r.Image),
		R:          r,
		Repository: Repository(r.Image),
		Status:     r.Verdict(),
		Failed:     len(r.Gate.Failed),
	}
	var failOn []string
	for _, s := range r.Gate.FailOn {
		failOn = append(failOn, s.String())
	}
	v.FailOn = strings.Join(failOn, ", ")
	for _, l := range r.Layers {
		v.LayerSize += l.Size
	}

	current := make([]findings.Finding, 0, len(r.Findings))
	var fixed []findings.Finding
	for _, f := range r.Findings {
		if f.Status == findings.StatusFixed {
			fixed = append(fixed, f)
			continue
		}
		current = append(current, f)
		if f.Status == findings.StatusNew {
			v.New++
		}
	}
	findings.Sort(current)
	findings.Sort(fixed)
	v.Fixed = len(fixed)
	v.Total = len(current)

	counts := map[findings.Severity]*sevRow{}
	for _, f := range current {
		c, ok := counts[f.Severity]
		if !ok {
			c = &sevRow{Severity: f.Severity.String()}
			counts[f.Severity] = c
		}
		if f.Origin == findings.OriginBuild {
			c.Build++
			v.Build++
		} else {
			c.Base++
			v.Base++
		}
	}
	sevs := findings.Severities()
	slices.Reverse(sevs)
	for _, s := range sevs {
		if c, ok := counts[s]; ok {
			v.Rows = append(v.Rows, *c)
		}
	}

	for i, f := range current {
		switch {
		case i < TopFindings:
			v.Top = append(v.Top, newRow(f, r.Compared != ""))
		case i < TopFindings+DetailsLimit:
			v.Rest = append(v.Rest, newRow(f, r.Compared != ""))
		default:
			v.Hidden++
		}
	}
	for i, f := range fixed {
		if i >= DetailsLimit {
			v.Hidden++
			continue
		}
		v.FixedRows = append(v.FixedRows, newRow(f, false))
	}
	return v
}

func newRow(f findings.Finding, compared bool) row {
	r := row{
		Severity: f.Severity.String(),
		ID:       f.ID,
		URL:      f.PrimaryURL,
		Title:    f.Title,
		Where:    f.Location.String(),
		New:      compared && f.Status == findings.StatusNew,
	}
	switch f.Kind {
	case findings.KindSecret:
		r.Package, r.Fix = "secret", "-"
		if f.Path != "" {
			r.Package = "secret in /" + strings.TrimPrefix(f.Path, "/")
		}
	case findings.KindMisconfig:
		r.Package, r.Fix = "misconfiguration", "-"
	default:
		r.Package = strings.TrimSpace(f.Package + " " + f.InstalledVersion)
		r.Fix = f.FixedVersion
		if r.Fix == "" {
			r.Fix = "no fix yet"
		}
	}
	if f.Origin == findings.OriginBuild {
		r.Origin = "this change"
	} else {
		r.Origin = "base image"
	}
	return r
}

func render(name string, r Report) (string, error) {
	t, err := template.New("").Funcs(template.FuncMap{
		"code":   code,
		"cell":   cell,
		"size":   HumanSize,
		"plural": plural,
		"add":    func(a, b int) int { return a + b },
		"icon":   icon,
		"sevIcon": func(s string) string {
			return sevIcon[s]
		},
		"fence": fence,
		"short": short,
	}).ParseFS(templateFS, "templates/*.md.tmpl")
	if err != nil {
		return "", fmt.Errorf("parsing markdown templates: %w", err)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, name, newView(r)); err != nil {
		return "", fmt.Errorf("rendering markdown %s: %w", name, err)
	}
	return collapseBlankLines(b.String()), nil
}

// collapseBlankLines removes runs of blank lines the templates leave, and
// ends the text with one newline.
func collapseBlankLines(s string) string {
	lines := strings.Split(s, "\n")
	out := make([]string, 0, len(lines))
	blank := true // also drops leading blank lines
	for _, l := range lines {
		l = strings.TrimRight(l, " \t")
		if l == "" {
			if blank {
				continue
			}
			blank = true
		} else {
			blank = false
		}
		out = append(out, l)
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
}

var sevIcon = map[string]string{
	"CRITICAL": "🟥",
	"HIGH":     "🟧",
	"MEDIUM":   "🟨",
	"LOW":      "🟦",
	"UNKNOWN":  "⬜",
}

func icon(s Status) string {
	switch s {
	case StatusPassed:
		return "✅"
	case StatusFailed, StatusBuildFailed:
		return "❌"
	}
	return "ℹ️"
}

// code renders s as an inline code span that survives backticks and table
// pipes.
func code(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return ""
	}
	s = strings.ReplaceAll(s, "|", `\|`)
	ticks := "`"
	for strings.Contains(s, ticks) {
		ticks += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return ticks + " " + s + " " + ticks
	}
	return ticks + s + ticks
}

// cell makes s safe in a table cell: one line, pipes and HTML escaped,
// at most 120 characters.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = cutUTF8(s, 119) + "…"
	}
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}

// short returns the first line of s, at most 80 characters.
func short(s string) string {
	s, _, cut := strings.Cut(s, "\n")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		return cutUTF8(s, 79) + "…"
	}
	if cut {
		return s + " …"
	}
	return s
}

// fence returns a code fence longer than any run of backticks in s.
func fence(s string) string {
	f := "```"
	for strings.Contains(s, f) {
		f += "`"
	}
	return f
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// HumanSize formats n bytes with decimal units as docker does ("12.3 MB").
func HumanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTP"[exp])
}
