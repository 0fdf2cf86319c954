package scan

import (
	"slices"
	"testing"

	"github.com/intesys/ship-action/internal/findings"
)

func TestScanDockerfile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		dockerfile string
		wantIDs    []string // a subset that must be found
		wantLine   map[string]int
		notIDs     []string
	}{
		{
			name:       "root user and latest tag and ADD",
			dockerfile: "FROM debian:latest\nADD run.sh /app/\nUSER root\nCMD [\"/app/run\"]\n",
			wantIDs:    []string{"DS-0001", "DS-0002", "DS-0005", "DS-0026"},
			wantLine:   map[string]int{"DS-0001": 1, "DS-0005": 2},
		},
		{
			name: "clean Dockerfile",
			dockerfile: "FROM debian:12.5\nCOPY app /app\nRUN useradd app\nUSER app\n" +
				"HEALTHCHECK CMD [\"/app/health\"]\nCMD [\"/app/run\"]\n",
			notIDs: []string{"DS-0001", "DS-0002", "DS-0005"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ScanDockerfile(t.Context(), "build/Dockerfile.app", []byte(tt.dockerfile), WithLogger(testLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			byID := map[string]findings.Finding{}
			var ids []string
			for _, f := range got {
				byID[f.ID] = f
				ids = append(ids, f.ID)
				if f.Kind != findings.KindMisconfig || f.Location.Path != "build/Dockerfile.app" || f.Origin != findings.OriginBuild {
					t.Errorf("finding %+v", f)
				}
			}
			for _, id := range tt.wantIDs {
				if _, ok := byID[id]; !ok {
					t.Errorf("%s not found in %v", id, ids)
				}
			}
			for id, line := range tt.wantLine {
				if byID[id].Location.Line != line {
					t.Errorf("%s at line %d, want %d", id, byID[id].Location.Line, line)
				}
			}
			for _, id := range tt.notIDs {
				if slices.Contains(ids, id) {
					t.Errorf("%s found in a Dockerfile without it: %v", id, ids)
				}
			}
		})
	}
}
