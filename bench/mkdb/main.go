// Command mkdb writes a Trivy vulnerability DB (trivy.db and metadata.json,
// as Trivy lays out <cache-dir>/db) from YAML fixtures in the format of
// github.com/aquasecurity/bolt-fixtures, for the scan benchmark: no DB can
// be downloaded here.
//
// Usage: go run ./bench/mkdb DBDIR FIXTURE.yaml...
package main

import (
	"fmt"
	"os"
	"time"

	fixtures "github.com/aquasecurity/bolt-fixtures"
	tdb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: mkdb DBDIR FIXTURE.yaml...")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkdb:", err)
		os.Exit(1)
	}
}

func run(dir string, files []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	loader, err := fixtures.New(tdb.Path(dir), files)
	if err != nil {
		return err
	}
	if err := loader.Load(); err != nil {
		loader.Close()
		return fmt.Errorf("loading fixtures: %w", err)
	}
	if err := loader.Close(); err != nil {
		return err
	}
	now := time.Now().UTC()
	return metadata.NewClient(dir).Update(metadata.Metadata{
		Version: tdb.SchemaVersion, NextUpdate: now.Add(24 * time.Hour),
		UpdatedAt: now.Add(-time.Hour), DownloadedAt: now.Add(-time.Hour),
	})
}
