package github

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/intesys/ship-action/internal/findings"
)

// MaxCommandsPerLevel is how many annotations of one level GitHub shows
// for a step's workflow commands.
const MaxCommandsPerLevel = 10

// WorkflowCommands returns workflow-command annotations for fs, the
// fallback when the token may not create a check run: the annotations of
// Annotations as ::error (failure), ::warning and ::notice lines, the most
// severe first, at most MaxCommandsPerLevel per level, then one ::notice
// counting the findings left out (the notices keep a place for it).
func WorkflowCommands(fs []findings.Finding) []string {
	anns, rest := Annotations(fs, 0)
	byLevel := map[Level][]Annotation{}
	for _, a := range anns {
		byLevel[a.Level] = append(byLevel[a.Level], a)
	}
	levels := []Level{LevelFailure, LevelWarning, LevelNotice}
	shown := map[Level]int{}
	for _, l := range levels {
		shown[l] = min(len(byLevel[l]), MaxCommandsPerLevel)
	}
	count := func() int {
		n := rest
		for _, l := range levels {
			for _, a := range byLevel[l][shown[l]:] {
				n += a.findings
			}
		}
		return n
	}
	if count() > 0 && shown[LevelNotice] == MaxCommandsPerLevel {
		shown[LevelNotice]-- // room for the count
	}
	var out []string
	for _, l := range levels {
		for _, a := range byLevel[l][:shown[l]] {
			out = append(out, WorkflowCommand(a))
		}
	}
	if n := count(); n > 0 {
		out = append(out, "::notice title=ship::"+escapeData(
			fmt.Sprintf("%d more findings not shown as annotations (GitHub shows %d per level): see the job summary", n, MaxCommandsPerLevel)))
	}
	return out
}

// WorkflowCommand returns a as a workflow command
// ("::error file=Dockerfile,line=3,endLine=3,title=…::message").
func WorkflowCommand(a Annotation) string {
	cmd := "notice"
	switch a.Level {
	case LevelFailure:
		cmd = "error"
	case LevelWarning:
		cmd = "warning"
	}
	var props []string
	if a.Path != "" {
		props = append(props, "file="+escapeProperty(a.Path))
		if a.StartLine > 0 {
			props = append(props, "line="+strconv.Itoa(a.StartLine))
		}
		if a.EndLine > 0 && a.EndLine != a.StartLine {
			props = append(props, "endLine="+strconv.Itoa(a.EndLine))
		}
	}
	if a.Title != "" {
		props = append(props, "title="+escapeProperty(a.Title))
	}
	s := "::" + cmd
	if len(props) > 0 {
		s += " " + strings.Join(props, ",")
	}
	return s + "::" + escapeData(strings.TrimRight(a.Message, "\n"))
}

// escapeData escapes a workflow command's message.
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// escapeProperty escapes a workflow command's property value.
func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
