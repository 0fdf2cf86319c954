package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/testbed"
)

// findingsOf reads a findings-json document as "id|severity|origin|path:line".
func findingsOf(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading findings-json: %v", err)
	}
	var doc struct {
		Digest   string `json:"digest"`
		Findings []struct {
			ID       string `json:"id"`
			Kind     string `json:"kind"`
			Severity string `json:"severity"`
			Origin   string `json:"origin"`
			Location struct {
				Path string `json:"path"`
				Line int    `json:"line"`
			} `json:"location"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("findings-json is not JSON: %v\n%s", err, raw)
	}
	if !strings.HasPrefix(doc.Digest, "sha256:") {
		t.Errorf("findings-json digest %q", doc.Digest)
	}
	var out []string
	for _, f := range doc.Findings {
		out = append(out, fmt.Sprintf("%s|%s|%s|%s:%d", f.ID, f.Severity, f.Origin, f.Location.Path, f.Location.Line))
	}
	return out
}

// TestScan builds an image FROM the busybox base with a vulnerable
// requirements.txt (per the fixture DB) and a file holding a secret, scans
// it offline with the fixture DB, and checks the gate, the findings'
// locations, and `ship scan` of the pushed image.
func TestScan(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	reg := testbed.StartRegistry(t)
	testbed.PushImage(t, testbed.BusyboxImage(t), reg.Ref("base/busybox:1"))
	root := t.TempDir()
	src := filepath.Join(root, "src")
	writeTree(t, src, map[string]file{
		"Dockerfile": txt("FROM " + reg.Ref("base/busybox:1") + "\n" +
			"WORKDIR /app\n" +
			"COPY requirements.txt settings.conf /app/\n" +
			"CMD [\"cat\", \"/app/requirements.txt\"]\n"),
		"requirements.txt": txt("# app dependencies\nflask-ship-none==0.1\nshipreq==1.5.0\n"),
		"settings.conf":    txt("[aws]\naws_access_key_id = AKIAZ3MSHIPDEMOKEY7Q\nregion = eu-south-1\n"),
	})
	cache := filepath.Join(root, "cache")
	testbed.FixtureDB(t, cache)
	tag := reg.Ref("scan/app:1")
	common := []string{"--scan", "--cache-dir", cache, "--skip-db-update", "--db-repository", "127.0.0.1:1/none/trivy-db:2",
		"--insecure-registry", reg.Host}
	build := append([]string{"--context", src, "--tag", tag, "--push"}, common...)
	// Locations are repository paths: relative to the working directory
	// (the checkout) when the context is inside it.
	want := []string{
		"aws-access-key-id|CRITICAL|build|src/settings.conf:2",
		"CVE-2099-0003|CRITICAL|build|src/requirements.txt:3",
	}
	const wantGate = "ship: 2 findings at or above HIGH (fail-on): "

	t.Run("gate fails", func(t *testing.T) {
		out := filepath.Join(root, "gate.json")
		res := runShip(t, ctx, root, nil, append(slices.Clone(build), "--fail-on", "HIGH,CRITICAL", "--findings-json", out)...)
		if res.Code != 1 || !strings.HasPrefix(res.errorLine(), wantGate) ||
			!strings.Contains(res.errorLine(), "CVE-2099-0003 in shipreq (src/requirements.txt:3)") ||
			!strings.Contains(res.errorLine(), "aws-access-key-id (src/settings.conf:2)") {
			t.Fatalf("want exit 1 and %q...: %s", wantGate, res)
		}
		if got := findingsOf(t, out); !slices.Equal(got, want) {
			t.Errorf("findings %q, want %q", got, want)
		}
		if strings.Contains(res.Stdout+res.Stderr, "AKIAZ3MSHIPDEMOKEY7Q") {
			t.Error("the secret's value is in ship's output")
		}
		if !strings.Contains(res.Stderr, "src/requirements.txt:3\n") {
			t.Errorf("no findings table grouped by location on stderr:\n%s", res.Stderr)
		}
	})

	t.Run("report only", func(t *testing.T) {
		out := filepath.Join(root, "report.json")
		res := runShip(t, ctx, root, nil, append(slices.Clone(build), "--findings-json", out)...)
		if res.Code != 0 {
			t.Fatalf("without fail-on: %s", res)
		}
		if got := findingsOf(t, out); !slices.Equal(got, want) {
			t.Errorf("findings %q, want %q", got, want)
		}
		lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
		var outputs struct {
			Scan struct{ Critical, High int } `json:"scan"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &outputs); err != nil || outputs.Scan.Critical != 2 {
			t.Errorf("outputs line %q: critical = %d (%v), want 2", lines[len(lines)-1], outputs.Scan.Critical, err)
		}

		// ship scan of the pushed image: the same findings, without the
		// build's locations (nothing says which instruction made a layer).
		scanOut := filepath.Join(root, "scan.json")
		res = runShip(t, ctx, root, nil, append([]string{"scan", tag, "--fail-on", "CRITICAL", "--findings-json", scanOut}, common...)...)
		if res.Code != 1 || !strings.HasPrefix(res.errorLine(), "ship: 2 findings at or above CRITICAL (fail-on): ") {
			t.Fatalf("ship scan: want exit 1 and the gate: %s", res)
		}
		wantScan := []string{"aws-access-key-id|CRITICAL|base|:0", "CVE-2099-0003|CRITICAL|base|:0"}
		if got := findingsOf(t, scanOut); !slices.Equal(got, wantScan) {
			t.Errorf("ship scan findings %q, want %q", got, wantScan)
		}
	})
}
