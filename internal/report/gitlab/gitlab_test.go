package gitlab

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/testbed"
)

func sample() Input {
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	return Input{
		Image: "registry.example.com/group/app:abc123", DefaultBranchImage: "registry.example.com/group/app:main",
		OS: "debian 12.5", Start: start, End: start.Add(3 * time.Second), ShipVersion: "1.0.0", TrivyVersion: "0.74.0",
		Findings: []findings.Finding{
			{ID: "CVE-2099-0001", Kind: findings.KindVulnerability, Severity: findings.SeverityCritical, Package: "openssl",
				InstalledVersion: "3.0.1", FixedVersion: "3.0.2", Title: "openssl: bad", PrimaryURL: "https://avd.aquasec.com/nvd/cve-2099-0001",
				Origin: findings.OriginBuild, Location: findings.Location{Path: "Dockerfile", Line: 3}, Instruction: "RUN apt-get install -y openssl"},
			{ID: "GHSA-xxxx-yyyy-zzzz", Kind: findings.KindVulnerability, Severity: findings.SeverityMedium, Package: "flask",
				InstalledVersion: "0.1", Origin: findings.OriginBuild, Path: "app/requirements.txt", Location: findings.Location{Path: "requirements.txt", Line: 2}},
			{ID: "aws-access-key-id", Kind: findings.KindSecret, Severity: findings.SeverityCritical, Title: "AWS Access Key ID",
				Origin: findings.OriginBuild, Path: "app/settings.conf", Location: findings.Location{Path: "settings.conf", Line: 7}},
			{ID: "CVE-2099-0003", Kind: findings.KindVulnerability, Severity: findings.SeverityLow, Package: "zlib", InstalledVersion: "1.2", Origin: findings.OriginBase},
		},
	}
}

func TestContainerScanning(t *testing.T) {
	t.Parallel()
	data, err := ContainerScanning(sample())
	if err != nil {
		t.Fatal(err)
	}
	testbed.ValidateJSON(t, "gitlab-container-scanning-report-format.schema.json", data)
	var rep struct {
		Version string
		Scan    struct {
			StartTime string `json:"start_time"`
		}
		Vulnerabilities []struct {
			ID, Severity, Solution string
			Identifiers            []struct{ Type, Value string }
			Location               struct {
				Dependency struct {
					Package struct{ Name string }
					Version string
				}
				Image string
			}
		}
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Version != SchemaVersion || rep.Scan.StartTime != "2026-11-26T10:00:00" {
		t.Errorf("version %q, start %q", rep.Version, rep.Scan.StartTime)
	}
	if len(rep.Vulnerabilities) != 3 {
		t.Fatalf("%d vulnerabilities, want 3 (the secret has no package)", len(rep.Vulnerabilities))
	}
	v := rep.Vulnerabilities[0]
	if v.Severity != "Critical" || v.Solution != "Upgrade openssl to 3.0.2" || v.Identifiers[0].Type != "cve" ||
		v.Location.Dependency.Package.Name != "openssl" || v.Location.Dependency.Version != "3.0.1" || v.Location.Image != "registry.example.com/group/app:abc123" {
		t.Errorf("first vulnerability: %+v", v)
	}
	if rep.Vulnerabilities[1].Identifiers[0].Type != "ghsa" {
		t.Errorf("GHSA identifier type %q", rep.Vulnerabilities[1].Identifiers[0].Type)
	}
	// Stable ids: the same finding in another pipeline (new tag) keeps its id.
	other := sample()
	other.Image = "registry.example.com/group/app:def456"
	data2, err := ContainerScanning(other)
	if err != nil {
		t.Fatal(err)
	}
	var rep2 struct{ Vulnerabilities []struct{ ID string } }
	if err := json.Unmarshal(data2, &rep2); err != nil {
		t.Fatal(err)
	}
	if rep2.Vulnerabilities[0].ID != v.ID || rep2.Vulnerabilities[0].ID == rep2.Vulnerabilities[1].ID {
		t.Errorf("ids: %s / %s vs %s", v.ID, rep2.Vulnerabilities[0].ID, rep2.Vulnerabilities[1].ID)
	}
	// An empty scan validates too.
	empty, err := ContainerScanning(Input{Start: other.Start, End: other.End})
	if err != nil {
		t.Fatal(err)
	}
	testbed.ValidateJSON(t, "gitlab-container-scanning-report-format.schema.json", empty)
}

func TestCodeQuality(t *testing.T) {
	t.Parallel()
	data, err := CodeQuality(sample().Findings)
	if err != nil {
		t.Fatal(err)
	}
	testbed.ValidateJSON(t, "gitlab-codequality-report.schema.json", data)
	var issues []json.RawMessage
	if err := json.Unmarshal(data, &issues); err != nil {
		t.Fatal(err)
	}
	if len(issues) != 3 {
		t.Fatalf("%d entries, want 3 (the base finding has no location)", len(issues))
	}
	for _, is := range issues {
		testbed.ValidateJSON(t, "gitlab-codequality-issue.schema.json", is)
	}
	var first struct {
		Description string
		CheckName   string `json:"check_name"`
		Severity    string
		Location    struct {
			Path  string
			Lines struct{ Begin int }
		}
	}
	if err := json.Unmarshal(issues[0], &first); err != nil {
		t.Fatal(err)
	}
	if first.CheckName != "CVE-2099-0001" || first.Severity != "critical" || first.Location.Path != "Dockerfile" || first.Location.Lines.Begin != 3 {
		t.Errorf("first entry: %+v", first)
	}
	emptyData, err := CodeQuality(nil)
	if err != nil || string(emptyData) != "[]" {
		t.Errorf("no findings: %s %v", emptyData, err)
	}
}
