package github

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFromFork(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, tt := range map[string]struct {
		payload string
		want    bool
	}{
		"fork":         {`{"pull_request":{"head":{"repo":{"full_name":"someone/app"}},"base":{"repo":{"full_name":"intesys/app"}}}}`, true},
		"same repo":    {`{"pull_request":{"head":{"repo":{"full_name":"intesys/app"}},"base":{"repo":{"full_name":"intesys/app"}}}}`, false},
		"push":         {`{"after":"abc"}`, false},
		"not json":     {`{`, false},
		"deleted fork": {`{"pull_request":{"head":{"repo":null},"base":{"repo":{"full_name":"intesys/app"}}}}`, false},
	} {
		p := filepath.Join(dir, name+".json")
		if err := os.WriteFile(p, []byte(tt.payload), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := FromFork(p); got != tt.want {
			t.Errorf("%s: FromFork = %v, want %v", name, got, tt.want)
		}
	}
	if FromFork("") || FromFork(filepath.Join(dir, "missing.json")) {
		t.Error("no payload counted as a fork")
	}
}
