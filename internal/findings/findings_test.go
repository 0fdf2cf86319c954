package findings

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseSeverity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    Severity
		wantErr bool
	}{
		{name: "upper", in: "HIGH", want: SeverityHigh},
		{name: "lower with space", in: " critical ", want: SeverityCritical},
		{name: "unknown", in: "Unknown", want: SeverityUnknown},
		{name: "low", in: "low", want: SeverityLow},
		{name: "medium", in: "MEDIUM", want: SeverityMedium},
		{name: "bad", in: "SEVERE", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSeverity(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseSeverity(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("ParseSeverity(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseSeverities(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []Severity
		wantErr bool
	}{
		{name: "empty", in: "", want: nil},
		{name: "list sorted most severe first", in: "HIGH,critical", want: []Severity{SeverityCritical, SeverityHigh}},
		{name: "newlines, blanks and duplicates", in: "LOW\n\nLOW, ,MEDIUM", want: []Severity{SeverityMedium, SeverityLow}},
		{name: "bad item", in: "HIGH,nope", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSeverities(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseSeverities(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestSeverityOrderAndText(t *testing.T) {
	t.Parallel()
	all := Severities()
	for i := 1; i < len(all); i++ {
		if !(all[i-1] < all[i]) {
			t.Errorf("%v is not less than %v", all[i-1], all[i])
		}
	}
	for _, s := range all {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%v): %v", s, err)
		}
		var back Severity
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("round trip of %v: got %v, %v", s, back, err)
		}
	}
	if _, err := Severity(9).MarshalText(); err == nil {
		t.Error("MarshalText of an invalid severity: want an error")
	}
	if got := Severity(9).String(); got != "Severity(9)" {
		t.Errorf("String of invalid severity = %q", got)
	}
}

func TestLocationString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		loc  Location
		want string
	}{
		{name: "zero", loc: Location{}, want: ""},
		{name: "path only", loc: Location{Path: "app/requirements.txt"}, want: "app/requirements.txt"},
		{name: "path and line", loc: Location{Path: "Dockerfile", Line: 7}, want: "Dockerfile:7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.loc.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := tt.loc.IsZero(); got != (tt.loc == Location{}) {
				t.Errorf("IsZero() = %v", got)
			}
		})
	}
}

func vuln(id string, sev Severity, pkg, fixed string, origin Origin) Finding {
	return Finding{ID: id, Kind: KindVulnerability, Severity: sev, Package: pkg, InstalledVersion: "1.0",
		FixedVersion: fixed, Origin: origin}
}

func ids(fs []Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	base := vuln("CVE-1", SeverityCritical, "openssl", "3.0.2", OriginBase)
	buildHigh := vuln("CVE-2", SeverityHigh, "requests", "2.31.0", OriginBuild)
	unfixed := vuln("CVE-3", SeverityHigh, "zlib", "", OriginBuild)
	low := vuln("CVE-4", SeverityLow, "bash", "5.2", OriginBuild)
	secret := Finding{ID: "aws-access-key-id", Kind: KindSecret, Severity: SeverityCritical, Origin: OriginBuild}
	all := []Finding{base, buildHigh, unfixed, low, secret}

	withStatus := func(f Finding, s Status) Finding { f.Status = s; return f }
	compared := []Finding{
		withStatus(base, StatusUnchanged),
		withStatus(buildHigh, StatusNew),
		withStatus(unfixed, StatusUnchanged),
		withStatus(vuln("CVE-9", SeverityCritical, "old", "2", OriginBuild), StatusFixed),
	}

	tests := []struct {
		name       string
		policy     Policy
		in         []Finding
		wantReport []string
		wantGate   []string
	}{
		{name: "zero policy reports all, fails on nothing", in: all,
			wantReport: []string{"CVE-1", "CVE-2", "CVE-3", "CVE-4", "aws-access-key-id"}},
		{name: "severity filter", policy: Policy{Severity: []Severity{SeverityCritical}}, in: all,
			wantReport: []string{"CVE-1", "aws-access-key-id"}},
		{name: "fail on critical and high", policy: Policy{FailOn: []Severity{SeverityCritical, SeverityHigh}}, in: all,
			wantReport: []string{"CVE-1", "CVE-2", "CVE-3", "CVE-4", "aws-access-key-id"},
			wantGate:   []string{"CVE-1", "CVE-2", "CVE-3", "aws-access-key-id"}},
		{name: "ignore unfixed drops vulnerabilities without a fix, not secrets",
			policy: Policy{FailOn: []Severity{SeverityHigh, SeverityCritical}, IgnoreUnfixed: true}, in: all,
			wantReport: []string{"CVE-1", "CVE-2", "CVE-4", "aws-access-key-id"},
			wantGate:   []string{"CVE-1", "CVE-2", "aws-access-key-id"}},
		{name: "ignore base reports base findings but does not gate on them",
			policy: Policy{FailOn: []Severity{SeverityCritical}, IgnoreBase: true}, in: all,
			wantReport: []string{"CVE-1", "CVE-2", "CVE-3", "CVE-4", "aws-access-key-id"},
			wantGate:   []string{"aws-access-key-id"}},
		{name: "gate only on reported findings",
			policy: Policy{Severity: []Severity{SeverityLow}, FailOn: []Severity{SeverityCritical}}, in: all,
			wantReport: []string{"CVE-4"}},
		{name: "new only gates on new findings",
			policy: Policy{FailOn: []Severity{SeverityCritical, SeverityHigh}, NewOnly: true}, in: compared,
			wantReport: []string{"CVE-1", "CVE-2", "CVE-3", "CVE-9"},
			wantGate:   []string{"CVE-2"}},
		{name: "fixed findings never fail the run",
			policy: Policy{FailOn: []Severity{SeverityCritical}}, in: compared,
			wantReport: []string{"CVE-1", "CVE-2", "CVE-3", "CVE-9"},
			wantGate:   []string{"CVE-1"}},
		{name: "new only without comparison treats all as new",
			policy: Policy{FailOn: []Severity{SeverityCritical}, NewOnly: true}, in: all,
			wantReport: []string{"CVE-1", "CVE-2", "CVE-3", "CVE-4", "aws-access-key-id"},
			wantGate:   []string{"CVE-1", "aws-access-key-id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ids(tt.policy.Filter(tt.in)); !slices.Equal(got, tt.wantReport) {
				t.Errorf("Filter = %v, want %v", got, tt.wantReport)
			}
			if got := ids(tt.policy.Gate(tt.in)); !slices.Equal(got, append([]string{}, tt.wantGate...)) {
				t.Errorf("Gate = %v, want %v", got, tt.wantGate)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	a := vuln("CVE-1", SeverityHigh, "openssl", "3", OriginBase)
	aUpgraded := a
	aUpgraded.InstalledVersion = "2.0" // still vulnerable: same finding
	b := vuln("CVE-2", SeverityLow, "bash", "", OriginBuild)
	c := vuln("CVE-3", SeverityMedium, "zlib", "", OriginBuild)
	secretA := Finding{ID: "aws-access-key-id", Kind: KindSecret, Severity: SeverityCritical, Path: "app/a.env"}
	secretB := secretA
	secretB.Path = "app/b.env" // same rule, other file: another finding

	type st struct {
		id     string
		status Status
	}
	tests := []struct {
		name              string
		current, previous []Finding
		want              []st
	}{
		{name: "no previous: all new", current: []Finding{a, b},
			want: []st{{"CVE-1", StatusNew}, {"CVE-2", StatusNew}}},
		{name: "unchanged, new and fixed", current: []Finding{aUpgraded, c}, previous: []Finding{a, b},
			want: []st{{"CVE-1", StatusUnchanged}, {"CVE-3", StatusNew}, {"CVE-2", StatusFixed}}},
		{name: "everything fixed", current: nil, previous: []Finding{a, b, b},
			want: []st{{"CVE-1", StatusFixed}, {"CVE-2", StatusFixed}}},
		{name: "path is part of the key", current: []Finding{secretB}, previous: []Finding{secretA},
			want: []st{{"aws-access-key-id", StatusNew}, {"aws-access-key-id", StatusFixed}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Diff(tt.current, tt.previous)
			var gotSt []st
			for _, f := range got {
				gotSt = append(gotSt, st{f.ID, f.Status})
			}
			if !slices.Equal(gotSt, tt.want) {
				t.Errorf("Diff = %v, want %v", gotSt, tt.want)
			}
			for _, f := range tt.current {
				if f.Status != "" {
					t.Errorf("Diff modified its input: %v", f)
				}
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	fixed := vuln("CVE-9", SeverityCritical, "x", "1", OriginBuild)
	fixed.Status = StatusFixed
	s := Summarize([]Finding{
		vuln("CVE-1", SeverityHigh, "a", "", OriginBase),
		vuln("CVE-2", SeverityHigh, "b", "", OriginBuild),
		{ID: "rule", Kind: KindSecret, Severity: SeverityCritical, Origin: OriginBuild},
		fixed,
	})
	if s.Total != 3 || s.BySeverity[SeverityHigh] != 2 || s.BySeverity[SeverityCritical] != 1 ||
		s.BySeverity[SeverityLow] != 0 || s.ByOrigin[OriginBuild] != 2 || s.ByOrigin[OriginBase] != 1 ||
		s.ByKind[KindSecret] != 1 || s.ByKind[KindVulnerability] != 2 {
		t.Errorf("Summarize = %+v", s)
	}
	if _, ok := s.BySeverity[SeverityUnknown]; !ok {
		t.Error("every severity must have an entry")
	}
}

func TestMarshalDocument(t *testing.T) {
	t.Parallel()
	f := vuln("CVE-2099-0001", SeverityHigh, "openssl", "3.0.2", OriginBase)
	f.Layer, f.Location, f.Status = "sha256:aa", Location{Path: "Dockerfile", Line: 1}, StatusNew
	low := vuln("CVE-2099-0002", SeverityLow, "bash", "", OriginBuild)
	b, err := Marshal(NewDocument("reg.example/app:1", "sha256:dd", []Finding{low, f}))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, b)
	}
	if doc["image"] != "reg.example/app:1" || doc["digest"] != "sha256:dd" {
		t.Errorf("image/digest wrong: %v %v", doc["image"], doc["digest"])
	}
	list, _ := doc["findings"].([]any)
	if len(list) != 2 {
		t.Fatalf("findings = %v", doc["findings"])
	}
	first := list[0].(map[string]any)
	// The names the issue promises users.
	for _, k := range []string{"id", "kind", "severity", "package", "installed_version", "fixed_version",
		"title", "layer", "origin", "location", "status"} {
		if _, ok := first[k]; !ok {
			t.Errorf("finding lacks %q: %v", k, first)
		}
	}
	if first["id"] != "CVE-2099-0001" || first["severity"] != "HIGH" || first["kind"] != "vulnerability" ||
		first["origin"] != "base" {
		t.Errorf("first finding (most severe first) = %v", first)
	}
	loc := first["location"].(map[string]any)
	if loc["path"] != "Dockerfile" || loc["line"] != float64(1) {
		t.Errorf("location = %v", loc)
	}
	if _, ok := list[1].(map[string]any)["status"]; ok {
		t.Error("status must be omitted without a comparison")
	}
	sum := doc["summary"].(map[string]any)["by_severity"].(map[string]any)
	if sum["HIGH"] != float64(1) || sum["LOW"] != float64(1) || sum["CRITICAL"] != float64(0) {
		t.Errorf("summary by severity = %v", sum)
	}

	empty, err := Marshal(Document{Image: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(empty), `"findings": []`) {
		t.Errorf("empty findings must be [], got\n%s", empty)
	}
}

func TestAttributionApply(t *testing.T) {
	t.Parallel()
	origins := []LayerOrigin{
		{DiffID: "sha256:base", Digest: "sha256:basegz", Base: true, Instruction: "FROM debian:12",
			Location: Location{Path: "Dockerfile", Line: 1}},
		{DiffID: "sha256:copy", Digest: "sha256:copygz", Instruction: "COPY app /app",
			Location: Location{Path: "Dockerfile", Line: 3},
			ContextFiles: map[string]string{
				"app/requirements.txt":  "src/requirements.txt",
				"app/package-lock.json": "src/package-lock.json",
				"app/.env":              "src/.env",
			}},
		{DiffID: "sha256:run", Digest: "sha256:rungz", Instruction: "RUN pip install -r /app/requirements.txt",
			Location: Location{Path: "Dockerfile", Line: 4}},
	}
	source := fstest.MapFS{
		"src/requirements.txt": {Data: []byte("# deps\nflask==2.0\nPyYAML==5.3\nrequests-oauthlib==1\nrequests==2.19.0\n")},
		"src/package-lock.json": {Data: []byte("{\n  \"packages\": {\n    \"node_modules/lodash\": {\n" +
			"      \"version\": \"4.17.4\"\n    }\n  }\n}\n")},
	}
	attr := Attribution{Origins: origins, Source: source}

	tests := []struct {
		name      string
		attr      Attribution
		in        Finding
		line      int
		wantLoc   Location
		wantOrig  Origin
		wantInstr string
		wantLayer string
		wantIndex int
	}{
		{name: "base layer points at FROM", attr: attr,
			in:      Finding{DiffID: "sha256:base", Package: "openssl", LayerIndex: -1},
			wantLoc: Location{Path: "Dockerfile", Line: 1}, wantOrig: OriginBase, wantLayer: "sha256:basegz"},
		{name: "run layer points at RUN", attr: attr,
			in:      Finding{DiffID: "sha256:run", Package: "flask", Path: "usr/lib/python3/dist-packages/flask/METADATA"},
			wantLoc: Location{Path: "Dockerfile", Line: 4}, wantOrig: OriginBuild,
			wantInstr: "RUN pip install -r /app/requirements.txt", wantLayer: "sha256:rungz", wantIndex: 2},
		{name: "copied lock file: line of the package (exact name, not a longer one)", attr: attr,
			in:      Finding{DiffID: "sha256:copy", Package: "requests", Path: "app/requirements.txt"},
			wantLoc: Location{Path: "src/requirements.txt", Line: 5}, wantOrig: OriginBuild,
			wantInstr: "COPY app /app", wantLayer: "sha256:copygz", wantIndex: 1},
		{name: "python name normalisation", attr: attr,
			in:      Finding{DiffID: "sha256:copy", Package: "pyyaml", Path: "/app/requirements.txt"},
			wantLoc: Location{Path: "src/requirements.txt", Line: 3}, wantOrig: OriginBuild,
			wantInstr: "COPY app /app", wantLayer: "sha256:copygz", wantIndex: 1},
		{name: "npm lock file", attr: attr,
			in:      Finding{DiffID: "sha256:copy", Package: "lodash", Path: "app/package-lock.json"},
			wantLoc: Location{Path: "src/package-lock.json", Line: 3}, wantOrig: OriginBuild,
			wantInstr: "COPY app /app", wantLayer: "sha256:copygz", wantIndex: 1},
		{name: "secret line from the scanner wins", attr: attr,
			in: Finding{DiffID: "sha256:copy", Kind: KindSecret, Path: "app/.env"}, line: 12,
			wantLoc: Location{Path: "src/.env", Line: 12}, wantOrig: OriginBuild,
			wantInstr: "COPY app /app", wantLayer: "sha256:copygz", wantIndex: 1},
		{name: "package absent from the file: no line", attr: attr,
			in:      Finding{DiffID: "sha256:copy", Package: "django", Path: "app/requirements.txt"},
			wantLoc: Location{Path: "src/requirements.txt"}, wantOrig: OriginBuild,
			wantInstr: "COPY app /app", wantLayer: "sha256:copygz", wantIndex: 1},
		{name: "no source fs: no line", attr: Attribution{Origins: origins},
			in:      Finding{DiffID: "sha256:copy", Package: "requests", Path: "app/requirements.txt"},
			wantLoc: Location{Path: "src/requirements.txt"}, wantOrig: OriginBuild,
			wantInstr: "COPY app /app", wantLayer: "sha256:copygz", wantIndex: 1},
		{name: "no origins: base without location", attr: Attribution{},
			in:      Finding{DiffID: "sha256:copy", Layer: "sha256:given", LayerIndex: 5, Location: Location{Path: "x", Line: 1}},
			wantLoc: Location{}, wantOrig: OriginBase, wantLayer: "sha256:given", wantIndex: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := tt.in
			tt.attr.Apply(&f, tt.line)
			if f.Location != tt.wantLoc || f.Origin != tt.wantOrig || f.Instruction != tt.wantInstr ||
				f.Layer != tt.wantLayer || f.LayerIndex != tt.wantIndex {
				t.Errorf("Apply = loc %v origin %q instr %q layer %q index %d; want loc %v origin %q instr %q layer %q index %d",
					f.Location, f.Origin, f.Instruction, f.Layer, f.LayerIndex,
					tt.wantLoc, tt.wantOrig, tt.wantInstr, tt.wantLayer, tt.wantIndex)
			}
		})
	}
}
