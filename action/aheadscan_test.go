package action

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestAheadScanWithoutDB: when no vulnerability DB can be had, the hook
// analyses nothing (the scan after the build would not run) and the failed
// downloads are debug lines, not warnings the scan repeats.
func TestAheadScanWithoutDB(t *testing.T) {
	t.Parallel()
	if (&aheadScan{}).dbOutcome() != nil || (*aheadScan)(nil).dbOutcome() != nil {
		t.Error("a DB outcome without the hook having run")
	}
	cache := t.TempDir()
	cfg := Config{Scan: true, Scanners: []string{"vuln", "secret"}, CacheDir: cache,
		DBRepository: []string{"127.0.0.1:1/nobody/trivy-db:2"}}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := startAheadScan(context.Background(), cfg, envOf(nil), log)
	if a == nil {
		t.Fatal("no ahead scan with the scan on")
	}
	a.hook(testbed.BusyboxImage(t), []string{"RUN"})
	// The scan after the build takes this failure instead of trying again.
	if db := a.dbOutcome(); db == nil || db.Err() == nil || !strings.Contains(db.Err().Error(), "db-repository") {
		t.Errorf("DB outcome for the scan = %v, want the failed download", db)
	}
	a.stop()
	out := logs.String()
	if !strings.Contains(out, "no vulnerability DB during the build; the base image is not analysed ahead") {
		t.Errorf("log does not say the base is not analysed:\n%s", out)
	}
	if strings.Contains(out, "level=WARN") || strings.Contains(out, "level=INFO") {
		t.Errorf("the failed DB download is logged above debug level:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(cache, "fanal")); err == nil {
		t.Error("the base image was analysed into the layer cache without a DB")
	}
}
