package gitlab

import (
	"encoding/json"
	"testing"

	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/testbed"
)

func TestBuildFailure(t *testing.T) {
	t.Parallel()
	loc := findings.Location{Path: "docker/Dockerfile", Line: 5}
	data, err := BuildFailure(loc, "docker/Dockerfile:5: RUN exited with 2\n(last output line: make: *** [all] Error 2)")
	if err != nil {
		t.Fatal(err)
	}
	testbed.ValidateJSON(t, "gitlab-codequality-report.schema.json", data)
	var issues []json.RawMessage
	if err := json.Unmarshal(data, &issues); err != nil || len(issues) != 1 {
		t.Fatalf("%d entries (%v), want 1:\n%s", len(issues), err, data)
	}
	testbed.ValidateJSON(t, "gitlab-codequality-issue.schema.json", issues[0])
	var is struct {
		Description, Severity, Fingerprint string
		CheckName                          string `json:"check_name"`
		Location                           struct {
			Path  string
			Lines struct{ Begin int }
		}
	}
	if err := json.Unmarshal(issues[0], &is); err != nil {
		t.Fatal(err)
	}
	want := "Build failed: docker/Dockerfile:5: RUN exited with 2 (last output line: make: *** [all] Error 2)"
	if is.Description != want || is.Severity != "blocker" || is.CheckName != BuildFailureCheck ||
		is.Location.Path != "docker/Dockerfile" || is.Location.Lines.Begin != 5 {
		t.Errorf("entry %+v, want %q at docker/Dockerfile:5 (blocker)", is, want)
	}

	// The same line fails again with another message: the same entry.
	again, err := BuildFailure(loc, "another message")
	if err != nil {
		t.Fatal(err)
	}
	var is2 []struct{ Fingerprint string }
	if err := json.Unmarshal(again, &is2); err != nil || is2[0].Fingerprint != is.Fingerprint {
		t.Errorf("fingerprint %v (%v), want %s", is2, err, is.Fingerprint)
	}
	if _, err := BuildFailure(findings.Location{}, "x"); err == nil {
		t.Error("a failure without a location gave a report")
	}
}
