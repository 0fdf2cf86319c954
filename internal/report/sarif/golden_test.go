package sarif

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGolden compares the SARIF log of the sample findings with
// testdata/sample.sarif (go test -update rewrites it; review the diff).
func TestGolden(t *testing.T) {
	t.Parallel()
	got, _ := write(t, sample())
	golden := filepath.Join("testdata", "sample.sarif")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("the SARIF log differs from %s (run go test -update and review the diff):\n%s", golden, got)
	}
}
