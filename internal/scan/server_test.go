package scan

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aquasecurity/trivy/pkg/cache"
	trivydb "github.com/aquasecurity/trivy/pkg/db"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	"github.com/aquasecurity/trivy/pkg/rpc/server"

	"github.com/intesys/ship-action/internal/findings"
)

// TestServerMode scans through a Trivy server started in the test from the
// same library (pkg/rpc/server) on loopback. It does not run in parallel:
// the server uses Trivy's process-wide DB, so the test holds trivyMu for its
// whole run and calls scanLocked.
func TestServerMode(t *testing.T) {
	fi := newFixtureImage(t, runFiles)
	serverDir := cacheWithDB(t, freshMeta())

	trivyMu.Lock()
	defer trivyMu.Unlock()
	if err := trivydb.Init(trivydb.Dir(serverDir)); err != nil {
		t.Fatalf("opening the server's DB: %v", err)
	}
	defer trivydb.Close()
	serverCache, err := cache.NewFSCache(serverDir)
	if err != nil {
		t.Fatal(err)
	}
	defer serverCache.Close()
	const token = "s3cret-token"
	srv := server.NewServer(appVersion, "", serverDir, token, "Trivy-Token", "", nil, ftypes.RegistryOptions{})
	var dbWg, reqWg sync.WaitGroup
	ts := httptest.NewServer(srv.NewServeMux(t.Context(), serverCache, &dbWg, &reqWg))
	defer ts.Close()

	good := http.Header{"Trivy-Token": []string{token}}
	tests := []struct {
		name         string
		headers      http.Header
		wantAnalysed int
		wantErr      bool
	}{
		{name: "first scan analyses every layer", headers: good, wantAnalysed: 3},
		{name: "second scan finds the layers in the server's cache", headers: good, wantAnalysed: 0},
		{name: "wrong token is refused", headers: http.Header{"Trivy-Token": []string{"nope"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientDir := t.TempDir()
			o, err := newOptions([]Option{WithServer(ts.URL, tt.headers), WithCacheDir(clientDir),
				WithDBRepositories(unreachable), WithOrigins(fi.origins), WithLogger(testLogger(t))})
			if err != nil {
				t.Fatal(err)
			}
			res, err := scanLocked(t.Context(), fi.img, o)
			if tt.wantErr {
				if err == nil {
					t.Fatal("scan succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("scan: %v", err)
			}
			var got []string
			for _, f := range res.Findings {
				got = append(got, f.ID+"@"+f.Location.String())
			}
			want := []string{"aws-access-key-id@src/settings.conf:2", "CVE-2099-0003@src/requirements.txt:3",
				"CVE-2099-0001@Dockerfile:1"}
			if !slices.Equal(got, want) {
				t.Errorf("findings = %v, want %v", got, want)
			}
			if len(res.Stats.AnalysedLayers) != tt.wantAnalysed {
				t.Errorf("analysed %d layers, want %d", len(res.Stats.AnalysedLayers), tt.wantAnalysed)
			}
			if res.Findings[2].Origin != findings.OriginBase {
				t.Errorf("base finding origin = %q", res.Findings[2].Origin)
			}
			if _, err := os.Stat(filepath.Join(clientDir, "db")); err == nil || res.Stats.DBDownloaded {
				t.Error("the client must not download or create a DB in server mode")
			}
		})
	}
	if _, err := newOptions([]Option{WithServer("localhost:4954", nil)}); err == nil ||
		!strings.Contains(err.Error(), "http") {
		t.Errorf("a server address without scheme must be refused, got %v", err)
	}
}
