package gitlab

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/intesys/ship-action/internal/findings"
)

// BuildFailureCheck is the check name of the code quality entry of a
// failed build.
const BuildFailureCheck = "ship-build-failed"

// BuildFailure returns the code quality report of a build that failed at
// loc (a Dockerfile line) with message: one blocker entry at that line, so
// the merge request's diff shows where the build broke. Its fingerprint
// depends on the file and line only, so a later pipeline failing there
// again is the same entry.
func BuildFailure(loc findings.Location, message string) ([]byte, error) {
	if loc.Path == "" {
		return nil, fmt.Errorf("writing code quality report: build failure without a location")
	}
	line := max(loc.Line, 1)
	issues := []cqIssue{{
		Description: "Build failed: " + strings.Join(strings.Fields(message), " "),
		CheckName:   BuildFailureCheck,
		Fingerprint: stableHex(BuildFailureCheck + "\x00" + loc.Path + "\x00" + fmt.Sprint(line)),
		Severity:    "blocker",
		Location:    cqLocation{Path: loc.Path, Lines: cqLines{Begin: line}},
		Categories:  []string{"Bug Risk"},
		Type:        "issue",
	}}
	out, err := json.MarshalIndent(issues, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("writing code quality report: %w", err)
	}
	return out, nil
}
