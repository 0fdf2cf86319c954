package archtest

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/intesys/ship-action"

// levels orders the project's packages: a package may import only packages
// of a strictly lower level (siblings at one level do not import each other),
// plus the exceptions in allowed. Packages missing here fail the test, so a
// new package must be placed on purpose.
var levels = map[string]int{
	"internal/findings":          0,
	"internal/layer":             0,
	"internal/dockerfile":        0,
	"internal/rootfs":            0,
	"internal/gitcommit":         0,
	"internal/provenance":        0,
	"internal/copier":            1,
	"internal/sandbox":           1,
	"internal/snapshot":          1,
	"internal/report/retryafter": 1,
	"internal/build":             2,
	"internal/registry":          2,
	"internal/scan":              2,
	"internal/report":            2,
	"action":                     3,
	"cmd/ship":                   4,
	"internal/testbed":           5, // tests only
	"internal/archtest":          5, // tests only
	"e2e":                        5, // tests only
	"bench":                      5, // benchmark tools only
}

// levelOf returns the level of an in-module import path (sub-packages share
// their parent's level, e.g. internal/report/sarif).
func levelOf(rel string) (string, int, bool) {
	for p := rel; p != "" && p != "."; {
		if l, ok := levels[p]; ok {
			return p, l, true
		}
		i := strings.LastIndex(p, "/")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return "", 0, false
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

func TestDependencyDirection(t *testing.T) {
	t.Parallel()
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if rel == "" {
			continue
		}
		from, fromLevel, ok := levelOf(rel)
		if !ok {
			t.Errorf("package %s has no place in the dependency levels: add it to levels in archtest_test.go", rel)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			irel := strings.TrimPrefix(imp, module+"/")
			to, toLevel, ok := levelOf(irel)
			if !ok {
				t.Errorf("%s imports %s, which has no level", rel, irel)
				continue
			}
			if to == "internal/testbed" {
				t.Errorf("%s imports internal/testbed: only tests may", rel)
				continue
			}
			if to == from {
				continue // within one package tree, e.g. report → report/sarif
			}
			if toLevel >= fromLevel {
				t.Errorf("%s (level %d) imports %s (level %d): dependencies must point down", rel, fromLevel, irel, toLevel)
			}
		}
	}
}

func TestOnlyScanImportsTrivy(t *testing.T) {
	t.Parallel()
	const trivy = "github.com/aquasecurity/trivy"
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if strings.HasPrefix(rel, "internal/scan") {
			continue
		}
		for _, imp := range p.Imports {
			if imp == trivy || strings.HasPrefix(imp, trivy+"/") {
				t.Errorf("%s imports %s: only internal/scan may import Trivy", rel, imp)
			}
		}
		dependsOnScan := false
		for _, d := range p.Deps {
			if strings.HasPrefix(d, module+"/internal/scan") {
				dependsOnScan = true
			}
		}
		if dependsOnScan {
			continue
		}
		for _, d := range p.Deps {
			if d == trivy || strings.HasPrefix(d, trivy+"/") {
				t.Errorf("%s depends on %s without going through internal/scan", rel, d)
			}
		}
	}
}

func TestLevelsRejectUpwardImport(t *testing.T) {
	t.Parallel()
	// The checker itself must be able to fail: a lower package importing a
	// higher one is reported by the level comparison.
	_, lo, _ := levelOf("internal/layer")
	_, hi, ok := levelOf("internal/report/sarif")
	if !ok || hi <= lo {
		t.Fatalf("levels: report/sarif=%d (found %v) layer=%d; want report above layer", hi, ok, lo)
	}
	if _, _, ok := levelOf("internal/unknownpkg"); ok {
		t.Fatal("an unknown package must have no level")
	}
}
