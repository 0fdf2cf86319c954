package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	fixtures "github.com/aquasecurity/bolt-fixtures"
)

// FixtureDB writes the fixture vulnerability DB (the YAML files of
// internal/scan/testdata/db, in the format of Trivy's own fixtures) into
// cacheDir/db as Trivy lays it out, with a metadata.json whose NextUpdate
// is a day ahead: a scan with skip-db-update uses it offline, and one
// without does not try to download a fresher one.
func FixtureDB(t testing.TB, cacheDir string) {
	t.Helper()
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "internal", "scan", "testdata", "db", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no DB fixtures in %s: %v", root, err)
	}
	dbDir := filepath.Join(cacheDir, "db")
	if err := os.MkdirAll(dbDir, 0o700); err != nil {
		t.Fatal(err)
	}
	loader, err := fixtures.New(filepath.Join(dbDir, "trivy.db"), files)
	if err != nil {
		t.Fatal(err)
	}
	if err := loader.Load(); err != nil {
		loader.Close()
		t.Fatalf("loading DB fixtures: %v", err)
	}
	if err := loader.Close(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	meta := fmt.Sprintf(`{"Version":2,"NextUpdate":%q,"UpdatedAt":%q,"DownloadedAt":%q}`,
		now.Add(24*time.Hour).Format(time.RFC3339), now.Add(-time.Hour).Format(time.RFC3339), now.Add(-time.Hour).Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(dbDir, "metadata.json"), []byte(meta), 0o600); err != nil {
		t.Fatal(err)
	}
}

// repoRoot returns the directory holding go.mod, from the test's working
// directory up.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", wd)
		}
	}
}
