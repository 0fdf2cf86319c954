package github

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	gh "github.com/google/go-github/v60/github"

	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/report/markdown"
)

// Limits of the checks API.
const (
	// AnnotationsPerRequest is how many annotations one request may carry.
	AnnotationsPerRequest = 50
	// MaxSummary is the longest check run summary, in characters.
	MaxSummary = 65535
	// maxTitle is the longest annotation title.
	maxTitle = 255
	// maxMessage bounds an annotation message (the API takes 64 KB).
	maxMessage = 60 << 10
	// maxLinesPerAnnotation bounds the findings listed in one grouped
	// annotation's message.
	maxLinesPerAnnotation = 50
)

// Conclusion is how a check run ended.
type Conclusion string

// The conclusions ship uses.
const (
	ConclusionSuccess Conclusion = "success"
	ConclusionFailure Conclusion = "failure"
	ConclusionNeutral Conclusion = "neutral"
)

// ConclusionOf maps a report's verdict to a check run conclusion: passed is
// success, failed and build failed are failure, report only is neutral.
func ConclusionOf(s markdown.Status) Conclusion {
	switch s {
	case markdown.StatusPassed:
		return ConclusionSuccess
	case markdown.StatusFailed, markdown.StatusBuildFailed:
		return ConclusionFailure
	}
	return ConclusionNeutral
}

// Level is an annotation's level.
type Level string

// The annotation levels.
const (
	LevelFailure Level = "failure"
	LevelWarning Level = "warning"
	LevelNotice  Level = "notice"
)

// LevelOf maps a severity to an annotation level: CRITICAL and HIGH
// failure, MEDIUM warning, LOW and UNKNOWN notice.
func LevelOf(s findings.Severity) Level {
	switch s {
	case findings.SeverityCritical, findings.SeverityHigh:
		return LevelFailure
	case findings.SeverityMedium:
		return LevelWarning
	}
	return LevelNotice
}

// Annotation marks lines of a repository file in a check run.
type Annotation struct {
	// Path is the file, relative to the repository root.
	Path string
	// StartLine and EndLine are 1-based.
	StartLine, EndLine int
	Level              Level
	Title              string
	Message            string
	// RawDetails is shown folded under the message (optional).
	RawDetails string
	// findings counts the findings grouped into the annotation.
	findings int
}

// Annotations returns the annotations of fs: one per file line (findings on
// one line are grouped, so a reviewer is not flooded), at the level of the
// most severe, most severe first, at most max of them (0: no cap). Fixed
// findings (no longer in the image) are ignored. skipped counts the
// findings without an annotation: those without a location and those
// beyond the cap.
func Annotations(fs []findings.Finding, max int) (anns []Annotation, skipped int) {
	type key struct {
		path string
		line int
	}
	groups := map[key][]findings.Finding{}
	var order []key
	for _, f := range fs {
		if f.Status == findings.StatusFixed {
			continue
		}
		if f.Location.Path == "" {
			skipped++
			continue
		}
		k := key{f.Location.Path, max1(f.Location.Line)}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], f)
	}
	for _, k := range order {
		g := groups[k]
		findings.Sort(g)
		anns = append(anns, annotation(k.path, k.line, g))
	}
	slices.SortStableFunc(anns, func(a, b Annotation) int {
		return cmp.Or(
			cmp.Compare(levelRank(b.Level), levelRank(a.Level)),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.StartLine, b.StartLine),
		)
	})
	if max > 0 && len(anns) > max {
		for _, a := range anns[max:] {
			skipped += a.findings
		}
		anns = anns[:max]
	}
	return anns, skipped
}

func max1(line int) int {
	if line < 1 {
		return 1
	}
	return line
}

func levelRank(l Level) int {
	switch l {
	case LevelFailure:
		return 2
	case LevelWarning:
		return 1
	}
	return 0
}

// annotation groups g (sorted, most severe first) found at path:line.
func annotation(path string, line int, g []findings.Finding) Annotation {
	a := Annotation{Path: path, StartLine: line, EndLine: line, Level: LevelOf(g[0].Severity), findings: len(g)}
	var msg strings.Builder
	if len(g) == 1 {
		f := g[0]
		a.Title = FindingTitle(f)
		fmt.Fprintf(&msg, "%s %s", f.Severity, f.ID)
		if f.Title != "" {
			fmt.Fprintf(&msg, ": %s", f.Title)
		}
		msg.WriteString("\n")
		if fix := fixText(f); fix != "" {
			msg.WriteString(fix + "\n")
		}
	} else {
		titles := make([]string, 0, len(g))
		for _, f := range g {
			titles = append(titles, FindingTitle(f))
		}
		a.Title = fmt.Sprintf("%d findings: %s", len(g), strings.Join(titles, "; "))
		for i, f := range g {
			if i == maxLinesPerAnnotation {
				fmt.Fprintf(&msg, "… and %d more\n", len(g)-i)
				break
			}
			fmt.Fprintf(&msg, "- %s %s", f.Severity, FindingTitle(f))
			if f.Kind == findings.KindVulnerability && f.FixedVersion == "" {
				msg.WriteString(" (no fix yet)")
			}
			msg.WriteString("\n")
		}
	}
	msg.WriteString(layerText(g[0]))
	a.Title = shorten(a.Title, maxTitle)
	a.Message = shorten(msg.String(), maxMessage)
	var details []string
	for _, f := range g {
		if f.PrimaryURL != "" && !slices.Contains(details, f.PrimaryURL) {
			details = append(details, f.PrimaryURL)
		}
	}
	a.RawDetails = shorten(strings.Join(details, "\n"), maxMessage)
	return a
}

// FindingTitle is a one-line title: "CVE-… in pkg 1.2.3 (fixed in 1.2.4)"
// for a vulnerability, "ID: title" for a secret or a misconfiguration.
func FindingTitle(f findings.Finding) string {
	if f.Kind != findings.KindVulnerability && f.Kind != "" {
		t := f.Title
		if t == "" {
			return f.ID
		}
		return f.ID + ": " + t
	}
	s := f.ID
	if f.Package != "" {
		s += " in " + strings.TrimSpace(f.Package+" "+f.InstalledVersion)
	}
	if f.FixedVersion != "" {
		s += " (fixed in " + f.FixedVersion + ")"
	}
	return s
}

// fixText says what fixes f.
func fixText(f findings.Finding) string {
	switch f.Kind {
	case findings.KindSecret:
		return "Fix: remove the secret from the image (and rotate it)."
	case findings.KindMisconfig:
		return ""
	}
	if f.FixedVersion == "" {
		return fmt.Sprintf("Fix: none yet for %s %s.", f.Package, f.InstalledVersion)
	}
	return fmt.Sprintf("Fix: upgrade %s to %s.", f.Package, f.FixedVersion)
}

// layerText says which layer brought f in.
func layerText(f findings.Finding) string {
	switch {
	case f.Origin == findings.OriginBase:
		return "From the base image (upgrade or change the FROM image)."
	case f.Instruction != "":
		s := "Layer: " + oneLine(f.Instruction, 200)
		if f.Path != "" {
			s += " (file /" + strings.TrimPrefix(f.Path, "/") + ")"
		}
		return s
	}
	return ""
}

func oneLine(s string, n int) string {
	return shorten(strings.Join(strings.Fields(s), " "), n)
}

// shorten cuts s to at most n bytes, ending with "…" when cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ell = "…"
	i := n - len(ell)
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + ell
}

// BuildFailureAnnotation annotates the instruction a build failed at.
func BuildFailureAnnotation(loc findings.Location, message string) Annotation {
	return Annotation{
		Path:      loc.Path,
		StartLine: max1(loc.Line),
		EndLine:   max1(loc.Line),
		Level:     LevelFailure,
		Title:     "Build failed",
		Message:   shorten(message, maxMessage),
		findings:  1,
	}
}

// StartCheck creates the check run name on headSHA, in progress, and
// returns its ID.
func (c *Client) StartCheck(ctx context.Context, name, headSHA string) (int64, error) {
	run, _, err := c.gh.Checks.CreateCheckRun(ctx, c.owner, c.repo, gh.CreateCheckRunOptions{
		Name:      name,
		HeadSHA:   headSHA,
		Status:    gh.String("in_progress"),
		StartedAt: &gh.Timestamp{Time: c.now()},
	})
	if err != nil {
		return 0, apiError("creating check run", PermissionChecks, err)
	}
	return run.GetID(), nil
}

// FinishCheck completes check run id with conclusion, title and summary
// (Markdown, cut to MaxSummary with a note) and anns, sent
// AnnotationsPerRequest per request. At most max annotations are sent (0:
// no cap), the first ones (Annotations sorts the most severe first); the
// summary says how many were left out. The last request completes the
// run, so a run never looks finished without its annotations.
func (c *Client) FinishCheck(ctx context.Context, id int64, conclusion Conclusion, title, summary string, anns []Annotation, max int) error {
	var note string
	if max > 0 && len(anns) > max {
		note = fmt.Sprintf("\n\n_%d more annotations not shown (max-annotations: %d)._", len(anns)-max, max)
		anns = anns[:max]
	}
	summary = markdown.Truncate(summary, MaxSummary-len(note),
		"\n_The summary was cut to fit GitHub's limit: the job summary and the report artifact have all of it._") + note
	for i := 0; ; i += AnnotationsPerRequest {
		batch := anns[i:min(i+AnnotationsPerRequest, len(anns))]
		last := i+AnnotationsPerRequest >= len(anns)
		body := checkRunUpdate{Output: checkRunOutput{Title: title, Summary: summary, Annotations: toAPI(batch)}}
		if last {
			body.Status = "completed"
			body.Conclusion = string(conclusion)
			body.CompletedAt = &gh.Timestamp{Time: c.now()}
		}
		if err := c.updateCheckRun(ctx, id, body); err != nil {
			return apiError(fmt.Sprintf("updating check run %d", id), PermissionChecks, err)
		}
		if last {
			return nil
		}
	}
}

// checkRunUpdate is the body of PATCH check-runs/{id}. go-github's
// UpdateCheckRunOptions always sends "name", which would rename the run.
type checkRunUpdate struct {
	Status      string         `json:"status,omitempty"`
	Conclusion  string         `json:"conclusion,omitempty"`
	CompletedAt *gh.Timestamp  `json:"completed_at,omitempty"`
	Output      checkRunOutput `json:"output"`
}

type checkRunOutput struct {
	Title       string                   `json:"title"`
	Summary     string                   `json:"summary"`
	Annotations []*gh.CheckRunAnnotation `json:"annotations,omitempty"`
}

func (c *Client) updateCheckRun(ctx context.Context, id int64, body checkRunUpdate) error {
	req, err := c.gh.NewRequest(http.MethodPatch, fmt.Sprintf("repos/%s/%s/check-runs/%d", url.PathEscape(c.owner), url.PathEscape(c.repo), id), body)
	if err != nil {
		return err
	}
	_, err = c.gh.Do(ctx, req, nil)
	return err
}

func toAPI(anns []Annotation) []*gh.CheckRunAnnotation {
	if len(anns) == 0 {
		return nil
	}
	out := make([]*gh.CheckRunAnnotation, 0, len(anns))
	for _, a := range anns {
		ca := &gh.CheckRunAnnotation{
			Path:            gh.String(a.Path),
			StartLine:       gh.Int(a.StartLine),
			EndLine:         gh.Int(a.EndLine),
			AnnotationLevel: gh.String(string(a.Level)),
			Message:         gh.String(a.Message),
		}
		if a.Title != "" {
			ca.Title = gh.String(a.Title)
		}
		if a.RawDetails != "" {
			ca.RawDetails = gh.String(a.RawDetails)
		}
		out = append(out, ca)
	}
	return out
}
