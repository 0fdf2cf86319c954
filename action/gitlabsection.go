package action

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// gitlabSections marks the phases of a run (build, push, scan, report) as
// collapsible sections of the GitLab job log: a section_start line before
// the phase's log lines and a section_end line after them. Off GitLab CI it
// writes nothing.
type gitlabSections struct {
	w   io.Writer // nil: not on GitLab
	now func() time.Time
}

// newGitLabSections returns the sections of a run that writes its log to
// w; they are only written when GITLAB_CI=true.
func newGitLabSections(env func(string) string, w io.Writer) gitlabSections {
	if env("GITLAB_CI") != "true" || w == nil {
		return gitlabSections{}
	}
	return gitlabSections{w: w, now: time.Now}
}

// start opens the collapsed section ship_<name> titled header and returns
// the function that closes it (which does nothing after its first call).
// Phases that run at the same time share one section: GitLab nests
// sections, it does not interleave them.
func (s gitlabSections) start(name, header string) (end func()) {
	if s.w == nil {
		return func() {}
	}
	name = sectionName(name)
	header = strings.Join(strings.Fields(header), " ")
	// Writes to the log are best effort: a lost marker only changes how
	// GitLab folds the log.
	_, _ = fmt.Fprintf(s.w, "\x1b[0Ksection_start:%d:%s[collapsed=true]\r\x1b[0K%s\n", s.now().Unix(), name, header)
	var once sync.Once
	return func() {
		once.Do(func() {
			_, _ = fmt.Fprintf(s.w, "\x1b[0Ksection_end:%d:%s\r\x1b[0K\n", s.now().Unix(), name)
		})
	}
}

// sectionName is "ship_" and name with the characters GitLab does not
// allow in a section name (all but letters, digits, _ . -) replaced by _.
func sectionName(name string) string {
	return "ship_" + strings.Map(func(r rune) rune {
		if r == '_' || r == '.' || r == '-' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			return r
		}
		return '_'
	}, name)
}
