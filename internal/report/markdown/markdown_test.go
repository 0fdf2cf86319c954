package markdown

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intesys/ship-action/internal/findings"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func layers() []Layer {
	return []Layer{
		{Instruction: "FROM debian:12", Location: "Dockerfile:1", Size: 29_123_456, Base: true},
		{Instruction: "RUN apt-get update && apt-get install -y openssl curl | tee /log", Location: "Dockerfile:3", Size: 12_345_678},
		{Instruction: "COPY requirements.txt /app/", Location: "Dockerfile:4", Size: 812},
	}
}

func vuln(i int, sev findings.Severity, origin findings.Origin) findings.Finding {
	f := findings.Finding{
		ID:               fmt.Sprintf("CVE-2024-%04d", i),
		Kind:             findings.KindVulnerability,
		Severity:         sev,
		Package:          fmt.Sprintf("pkg%d", i),
		InstalledVersion: "1.2.3",
		FixedVersion:     "1.2.4",
		Title:            fmt.Sprintf("pkg%d: overflow in | parser <x>", i),
		PrimaryURL:       fmt.Sprintf("https://avd.aquasec.com/nvd/cve-2024-%04d", i),
		Origin:           origin,
	}
	if origin == findings.OriginBuild {
		f.Location = findings.Location{Path: "Dockerfile", Line: 3}
		f.Instruction = "RUN apt-get update"
	} else {
		f.Location = findings.Location{Path: "Dockerfile", Line: 1}
	}
	if i%4 == 0 {
		f.FixedVersion = ""
	}
	return f
}

func manyFindings(n int) []findings.Finding {
	sevs := findings.Severities()
	var out []findings.Finding
	for i := range n {
		origin := findings.OriginBase
		if i%3 == 0 {
			origin = findings.OriginBuild
		}
		out = append(out, vuln(i, sevs[i%len(sevs)], origin))
	}
	out = append(out, findings.Finding{
		ID: "aws-access-key-id", Kind: findings.KindSecret, Severity: findings.SeverityCritical,
		Title: "AWS Access Key ID", Path: "app/.env", Origin: findings.OriginBuild,
		Location: findings.Location{Path: ".env", Line: 2},
	})
	return out
}

func reports() map[string]Report {
	gateFindings := manyFindings(30)
	var failed []findings.Finding
	for _, f := range gateFindings {
		if f.Severity == findings.SeverityCritical {
			failed = append(failed, f)
		}
	}
	cur := []findings.Finding{vuln(1, findings.SeverityHigh, findings.OriginBuild), vuln(2, findings.SeverityMedium, findings.OriginBase)}
	prev := []findings.Finding{vuln(2, findings.SeverityMedium, findings.OriginBase), vuln(7, findings.SeverityCritical, findings.OriginBuild)}
	return map[string]Report{
		"no_findings": {
			Image: "ghcr.io/acme/app:1.2", Digest: "sha256:" + strings.Repeat("ab", 32),
			Tags: []string{"1.2", "latest"}, Size: 41_470_000, Layers: layers(),
			Gate: Gate{FailOn: []findings.Severity{findings.SeverityCritical, findings.SeverityHigh}},
		},
		"many_findings": {
			Image: "ghcr.io/acme/app@sha256:" + strings.Repeat("cd", 32), Digest: "sha256:" + strings.Repeat("cd", 32),
			Tags: []string{"pr-7"}, Size: 41_470_000, Layers: layers(),
			Findings:  gateFindings,
			Gate:      Gate{FailOn: []findings.Severity{findings.SeverityCritical}, Failed: failed},
			ReportURL: "https://github.com/acme/app/actions/runs/1",
		},
		"build_failure": {
			Image: "ghcr.io/acme/app:pr-7",
			BuildError: &BuildError{
				Location: "Dockerfile:5",
				Message:  "RUN make: exit status 2\nmake: *** No rule to make target ```all```.",
			},
		},
		"compare_to": {
			Image: "registry.example.com:5000/acme/app:pr-9", Digest: "sha256:" + strings.Repeat("ef", 32),
			Size: 1234, Layers: layers()[:1], Compared: "registry.example.com:5000/acme/app:main",
			Findings: findings.Diff(cur, prev),
		},
	}
}

func TestGolden(t *testing.T) {
	t.Parallel()
	for name, r := range reports() {
		for kind, render := range map[string]func(Report) (string, error){"comment": Comment, "summary": Summary} {
			t.Run(name+"/"+kind, func(t *testing.T) {
				t.Parallel()
				got, err := render(r)
				if err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", name+"."+kind+".md")
				if *update {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("reading golden file (run go test -update): %v", err)
				}
				if got != string(want) {
					t.Errorf("%s differs from %s (run go test -update and review the diff):\n%s", kind, golden, got)
				}
			})
		}
	}
}

func TestContent(t *testing.T) {
	t.Parallel()
	rs := reports()
	tests := []struct {
		name      string
		r         Report
		comment   bool
		want      []string
		wantNot   []string
		wantCount map[string]int
	}{
		{
			name:    "marker first in a comment, without tag",
			r:       rs["no_findings"],
			comment: true,
			want:    []string{"<!-- ship:image=ghcr.io/acme/app -->\n", "No vulnerabilities", "**Passed**", "`sha256:abab", "41.5 MB compressed, 3 layers", "`FROM debian:12` (base)"},
		},
		{
			name:    "summary has no marker",
			r:       rs["no_findings"],
			wantNot: []string{"<!--"},
			want:    []string{"### ✅ ship: `ghcr.io/acme/app` passed"},
		},
		{
			name:    "many findings: top ten, rest in details",
			r:       rs["many_findings"],
			comment: true,
			want: []string{
				"<!-- ship:image=ghcr.io/acme/app -->", "**Failed**: 7 findings", "#### 31 findings: 11 from this change, 20 from the base image",
				"<details><summary>21 more findings</summary>", "[CVE-2024-0004](https://avd.aquasec.com/nvd/cve-2024-0004)",
				`overflow in \| parser &lt;x&gt;`, "`Dockerfile:3` (this change)", "`.env:2` (this change)", "[Full report](https://github.com/acme/app/actions/runs/1)",
			},
			// 10 top rows + 21 rest rows, each with one advisory link or secret row.
			wantCount: map[string]int{"| 🟥 CRITICAL | [": 6, "| 🟥 CRITICAL | aws-access-key-id": 1, "](https://avd.aquasec.com/": 30, "</details>": 1},
		},
		{
			name:    "build failure",
			r:       rs["build_failure"],
			want:    []string{"### ❌ ship: `ghcr.io/acme/app` build failed", "**The build failed** at `Dockerfile:5`", "````\nRUN make: exit status 2\n"},
			wantNot: []string{"findings", "#### Layers"},
		},
		{
			name: "compare-to: new and fixed",
			r:    rs["compare_to"],
			want: []string{"Since `registry.example.com:5000/acme/app:main`: **1 new**, **1 fixed**.", "CVE-2024-0001](https://avd.aquasec.com/nvd/cve-2024-0001) 🆕",
				"<details><summary>1 finding fixed since", "CVE-2024-0007", "#### 2 findings: 1 from this change, 1 from the base image", "Report only"},
			wantCount: map[string]int{"🆕": 1},
		},
		{
			name: "multi-platform index",
			r: func() Report {
				r := rs["no_findings"]
				r.Platforms = []Platform{{Name: "linux/amd64", Digest: "sha256:aaaa"}, {Name: "linux/arm64", Digest: "sha256:bbbb"}}
				return r
			}(),
			want: []string{"| **Platforms** | linux/amd64 `sha256:aaaa`, linux/arm64 `sha256:bbbb` (layers and findings below: linux/amd64) |"},
		},
		{
			name:    "one platform: no platforms row",
			r:       rs["no_findings"],
			wantNot: []string{"**Platforms**"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			render := Summary
			if tt.comment {
				render = Comment
			}
			got, err := render(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if tt.comment && !strings.HasPrefix(got, Marker(tt.r.Image)) {
				t.Errorf("comment does not start with the marker:\n%s", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("unexpected %q in:\n%s", w, got)
				}
			}
			for w, n := range tt.wantCount {
				if c := strings.Count(got, w); c != n {
					t.Errorf("%q appears %d times, want %d", w, c, n)
				}
			}
		})
	}
}

func TestDetailsLimit(t *testing.T) {
	t.Parallel()
	n := TopFindings + DetailsLimit + 25
	got, err := Comment(Report{Image: "app", Findings: manyFindings(n - 1), ReportURL: "https://x/run"})
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(got, "](https://avd.aquasec.com/"); c != TopFindings+DetailsLimit-1 {
		t.Errorf("%d linked rows, want %d", c, TopFindings+DetailsLimit-1)
	}
	if !strings.Contains(got, "25 more not shown: see the [full report](https://x/run).") {
		t.Errorf("no count of the rows left out:\n%s", got[len(got)-300:])
	}
	if !strings.Contains(got, fmt.Sprintf("<summary>%d more findings</summary>", n-TopFindings)) {
		t.Error("details summary does not count every remaining finding")
	}
}

func TestTitle(t *testing.T) {
	t.Parallel()
	rs := reports()
	tests := []struct {
		name string
		r    Report
		want string
	}{
		{name: "no findings", r: rs["no_findings"], want: "passed; no findings"},
		{name: "many findings", r: rs["many_findings"], want: "failed: 7 findings fail the run (CRITICAL); 31 findings: 7 CRITICAL, 6 HIGH, 6 MEDIUM, 6 LOW, 6 UNKNOWN"},
		{name: "build failure", r: rs["build_failure"], want: "build failed at Dockerfile:5"},
		{name: "compare-to", r: rs["compare_to"], want: "report only; 2 findings: 1 HIGH, 1 MEDIUM (1 new, 1 fixed)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Title(tt.r); got != tt.want {
				t.Errorf("Title = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMarker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{name: "tag", in: "ghcr.io/acme/app:1.2", want: "ghcr.io/acme/app"},
		{name: "digest", in: "ghcr.io/acme/app@sha256:abcd", want: "ghcr.io/acme/app"},
		{name: "tag and digest", in: "ghcr.io/acme/app:1@sha256:abcd", want: "ghcr.io/acme/app"},
		{name: "registry port", in: "localhost:5000/app", want: "localhost:5000/app"},
		{name: "registry port and tag", in: "localhost:5000/app:v1", want: "localhost:5000/app"},
		{name: "bare", in: "app", want: "app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Marker(tt.in); got != "<!-- ship:image="+tt.want+" -->" {
				t.Errorf("Marker(%q) = %q", tt.in, got)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("line of text\n", 100) // 1300 bytes
	tests := []struct {
		name  string
		s     string
		max   int
		note  string
		want  string
		check func(t *testing.T, got string)
	}{
		{name: "short stays", s: "abc\ndef", max: 7, note: "cut", want: "abc\ndef"},
		{name: "cut at line", s: "abc\ndef\nghi", max: 10, note: "…", want: "abc\n…"},
		{name: "whole line fits exactly", s: "abc\ndef\nghij", max: 11, note: "…", want: "abc\ndef\n…"},
		{name: "no line fits", s: "abcdefghij", max: 5, note: "cut", want: "cut"},
		{name: "note longer than max", s: "abcdefghij", max: 3, note: "truncated", want: "\ntr"},
		{
			name: "long", s: long, max: 500, note: "_truncated: see the full report_",
			check: func(t *testing.T, got string) {
				if len(got) > 500 {
					t.Errorf("len = %d > 500", len(got))
				}
				if !strings.HasSuffix(got, "line of text\n_truncated: see the full report_") {
					t.Errorf("not cut at a line boundary: %q", got[len(got)-60:])
				}
			},
		},
		{
			name: "multibyte", s: strings.Repeat("é", 100), max: 51, note: "",
			check: func(t *testing.T, got string) {
				if got != "" {
					t.Errorf("got %q, want empty (no line boundary)", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Truncate(tt.s, tt.max, tt.note)
			if len(got) > tt.max {
				t.Errorf("len %d > max %d", len(got), tt.max)
			}
			if tt.check != nil {
				tt.check(t, got)
				return
			}
			if got != tt.want {
				t.Errorf("Truncate = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHumanSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   int64
		want string
	}{
		{name: "bytes", in: 812, want: "812 B"},
		{name: "kilo", in: 1234, want: "1.2 kB"},
		{name: "mega", in: 41_470_000, want: "41.5 MB"},
		{name: "giga", in: 2_000_000_000, want: "2.0 GB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := HumanSize(tt.in); got != tt.want {
				t.Errorf("HumanSize(%d) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
