package sarif

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/testbed"
)

func sample() []findings.Finding {
	return []findings.Finding{
		{ID: "CVE-2099-0001", Kind: findings.KindVulnerability, Severity: findings.SeverityCritical, Package: "openssl",
			InstalledVersion: "3.0.1", FixedVersion: "3.0.2", Title: "openssl: bad thing", PrimaryURL: "https://avd.aquasec.com/nvd/cve-2099-0001",
			Layer: "sha256:aaa", Origin: findings.OriginBuild, Location: findings.Location{Path: "Dockerfile", Line: 3},
			Instruction: "RUN apt-get install -y openssl"},
		{ID: "CVE-2099-0002", Kind: findings.KindVulnerability, Severity: findings.SeverityMedium, Package: "flask",
			InstalledVersion: "0.1", Title: "flask: issue", Origin: findings.OriginBuild, Path: "app/requirements.txt",
			Location: findings.Location{Path: "requirements.txt", Line: 2}, Instruction: "COPY requirements.txt /app/"},
		{ID: "aws-access-key-id", Kind: findings.KindSecret, Severity: findings.SeverityCritical, Title: "AWS Access Key ID",
			Origin: findings.OriginBuild, Path: "app/settings.conf", Location: findings.Location{Path: "settings.conf", Line: 7}},
		{ID: "CVE-2099-0003", Kind: findings.KindVulnerability, Severity: findings.SeverityLow, Package: "zlib",
			InstalledVersion: "1.2", Origin: findings.OriginBase},
	}
}

// log is the part of a SARIF log the tests read.
type log struct {
	Runs []struct {
		Tool struct {
			Driver struct {
				Rules []struct {
					ID         string         `json:"id"`
					Properties map[string]any `json:"properties"`
					Help       struct{ Text, Markdown string }
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Results []struct {
			RuleID              string `json:"ruleId"`
			Level               string `json:"level"`
			Message             struct{ Text string }
			PartialFingerprints map[string]string `json:"partialFingerprints"`
			Locations           []struct {
				PhysicalLocation struct {
					ArtifactLocation struct{ URI string }    `json:"artifactLocation"`
					Region           struct{ StartLine int } `json:"region"`
				} `json:"physicalLocation"`
			} `json:"locations"`
		} `json:"results"`
	} `json:"runs"`
}

func write(t *testing.T, fs []findings.Finding) ([]byte, log) {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, Input{Image: "reg/app:1", Digest: "sha256:ddd", Findings: fs, ToolVersion: "1.2.3"}); err != nil {
		t.Fatal(err)
	}
	var l log
	if err := json.Unmarshal(buf.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), l
}

func TestWriteValidates(t *testing.T) {
	t.Parallel()
	data, _ := write(t, sample())
	testbed.ValidateJSON(t, "sarif-2.1.0.schema.json", data)
	empty, _ := write(t, nil)
	testbed.ValidateJSON(t, "sarif-2.1.0.schema.json", empty)
}

func TestWriteContent(t *testing.T) {
	t.Parallel()
	_, l := write(t, sample())
	if len(l.Runs) != 1 || len(l.Runs[0].Results) != 4 || len(l.Runs[0].Tool.Driver.Rules) != 4 {
		t.Fatalf("runs/results/rules: %+v", l)
	}
	run := l.Runs[0]
	want := []struct {
		rule, level, uri string
		line             int
		msg              string
	}{
		{"CVE-2099-0001", "error", "Dockerfile", 3, "CRITICAL: CVE-2099-0001 in openssl 3.0.1 (fixed in 3.0.2); added by RUN apt-get install -y openssl"},
		{"CVE-2099-0002", "warning", "requirements.txt", 2, "MEDIUM: CVE-2099-0002 in flask 0.1 (no fix yet); added by COPY requirements.txt /app/"},
		{"aws-access-key-id", "error", "settings.conf", 7, "CRITICAL: AWS Access Key ID in /app/settings.conf"},
		{"CVE-2099-0003", "note", "", 0, "LOW: CVE-2099-0003 in zlib 1.2 (no fix yet); from the base image"},
	}
	for i, w := range want {
		r := run.Results[i]
		if r.RuleID != w.rule || r.Level != w.level || r.Message.Text != w.msg {
			t.Errorf("result %d: %s %s %q; want %s %s %q", i, r.RuleID, r.Level, r.Message.Text, w.rule, w.level, w.msg)
		}
		if w.uri == "" {
			if len(r.Locations) != 0 {
				t.Errorf("result %d: locations %+v, want none", i, r.Locations)
			}
		} else if len(r.Locations) != 1 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI != w.uri || r.Locations[0].PhysicalLocation.Region.StartLine != w.line {
			t.Errorf("result %d: locations %+v, want %s:%d", i, r.Locations, w.uri, w.line)
		}
		if r.PartialFingerprints[fingerprintKey] == "" {
			t.Errorf("result %d: no partial fingerprint", i)
		}
	}
	sev := map[string]string{}
	for _, r := range run.Tool.Driver.Rules {
		s, _ := r.Properties["security-severity"].(string)
		sev[r.ID] = s
		if r.Help.Text == "" || r.Help.Markdown == "" {
			t.Errorf("rule %s: no help", r.ID)
		}
	}
	if sev["CVE-2099-0001"] != "9.5" || sev["CVE-2099-0002"] != "5.5" || sev["CVE-2099-0003"] != "2.0" {
		t.Errorf("security-severity: %v", sev)
	}
}

// TestFingerprintsStable: a finding keeps its fingerprint when its line,
// layer or version moves, and two findings do not share one.
func TestFingerprintsStable(t *testing.T) {
	t.Parallel()
	a := sample()
	b := sample()
	b[0].Location.Line = 9
	b[0].Layer = "sha256:other"
	b[0].InstalledVersion = "3.0.1-1"
	_, la := write(t, a)
	_, lb := write(t, b)
	fa := la.Runs[0].Results[0].PartialFingerprints[fingerprintKey]
	fb := lb.Runs[0].Results[0].PartialFingerprints[fingerprintKey]
	if fa != fb {
		t.Errorf("fingerprint changed with line/layer/version: %s vs %s", fa, fb)
	}
	seen := map[string]bool{}
	for _, r := range la.Runs[0].Results {
		fp := r.PartialFingerprints[fingerprintKey]
		if seen[fp] {
			t.Errorf("two results share fingerprint %s", fp)
		}
		seen[fp] = true
	}
}
