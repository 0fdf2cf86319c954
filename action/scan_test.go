package action

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/build"
	"github.com/intesys/ship-action/internal/dockerfile"
	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/testbed"
)

// The image of these tests, as if built from:
//
//	1 FROM debian:12
//	2 WORKDIR /app
//	3 COPY src/ /app/
//
// with the fixture DB of internal/scan/testdata/db: libshipdemo1 1.0-1 in
// the base has CVE-2099-0001 (HIGH, fixed in 1.0-2), shipreq 1.5.0 in the
// copied requirements.txt has CVE-2099-0003 (CRITICAL, fixed in 2.0.0), and
// the copied settings.conf holds an AWS access key (secret, CRITICAL).
var (
	scanBaseFiles = map[string]string{
		"etc/debian_version": "12.5\n",
		"etc/os-release":     "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
		"var/lib/dpkg/status": "Package: libshipdemo1\nStatus: install ok installed\nPriority: optional\n" +
			"Section: libs\nInstalled-Size: 100\nMaintainer: Ship Tests <tests@example.invalid>\n" +
			"Architecture: amd64\nSource: shipdemo\nVersion: 1.0-1\nDescription: fake library for ship's tests\n\n",
	}
	scanRequirements = "# app dependencies\nflask-ship-none==0.1\nshipreq==1.5.0\n"
	scanSettings     = "[aws]\naws_access_key_id = AKIAZ3MSHIPDEMOKEY7Q\nregion = eu-south-1\n"
)

// scanImage returns a linux/amd64 image of layers and their descriptions.
func scanImage(t *testing.T, layers []v1.Layer, infos []build.LayerInfo) (v1.Image, []build.LayerInfo) {
	t.Helper()
	img := testbed.LinuxImage(t, layers...)
	var err error
	for i, l := range layers {
		if infos[i].DiffID, err = l.DiffID(); err != nil {
			t.Fatal(err)
		}
		if infos[i].Digest, err = l.Digest(); err != nil {
			t.Fatal(err)
		}
	}
	return img, infos
}

// fixtureImages returns the image under test and the image it is compared
// to (the base layer alone).
func fixtureImages(t *testing.T) (img v1.Image, infos []build.LayerInfo, prev v1.Image) {
	t.Helper()
	loc := func(l int) dockerfile.Location { return dockerfile.Location{File: "Dockerfile", Line: l, EndLine: l} }
	base := testbed.FilesLayer(t, scanBaseFiles)
	cp := testbed.FilesLayer(t, map[string]string{"app/requirements.txt": scanRequirements, "app/settings.conf": scanSettings})
	img, infos = scanImage(t, []v1.Layer{base, cp}, []build.LayerInfo{
		{Base: true, Instruction: "FROM debian:12", Location: loc(1)},
		{Instruction: "COPY src/ /app/", Location: loc(3), ContextFiles: map[string]string{
			"app/requirements.txt": "src/requirements.txt",
			"app/settings.conf":    "src/settings.conf",
		}},
	})
	prev, _ = scanImage(t, []v1.Layer{base}, []build.LayerInfo{{}})
	return img, infos, prev
}

// scanClient is fakeClient with one image to resolve (compare-to).
type scanClient struct {
	fakeClient
	images map[string]v1.Image
}

func (c *scanClient) Image(_ context.Context, ref string, _ v1.Platform) (v1.Image, error) {
	if img, ok := c.images[ref]; ok {
		return img, nil
	}
	return nil, errors.New("MANIFEST_UNKNOWN: no such image")
}

// scanBed is a runBed whose build yields the fixture image with its layer
// origins, scanned for real against the fixture DB.
type scanBed struct {
	*runBed
	infos  []build.LayerInfo
	client *scanClient
	stderr bytes.Buffer
}

func newScanBed(t *testing.T) *scanBed {
	t.Helper()
	b := &scanBed{runBed: newBed(t)}
	img, infos, prev := fixtureImages(t)
	b.img, b.infos = img, infos
	var err error
	if b.digest, err = img.Digest(); err != nil {
		t.Fatal(err)
	}
	b.client = &scanClient{images: map[string]v1.Image{"registry.example/app:main": prev}}
	for p, c := range map[string]string{"src/requirements.txt": scanRequirements, "src/settings.conf": scanSettings} {
		p = filepath.Join(b.cfg.Context, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.cfg.Scan = true
	b.cfg.CacheDir = filepath.Join(b.dir, "cache")
	b.cfg.SkipDBUpdate = true
	b.cfg.DBRepository = []string{"127.0.0.1:1/aquasec/trivy-db:2"} // unreachable: nothing may be downloaded
	b.cfg.FindingsJSON = filepath.Join(b.dir, "work", "findings.json")
	b.cfg.SARIFFile = filepath.Join(b.dir, "work", "ship.sarif")
	testbed.FixtureDB(t, b.cfg.CacheDir)
	return b
}

func (b *scanBed) run() error {
	infos := b.infos
	builder := func(ctx context.Context, req build.Request, _ ...build.Option) (*build.Result, error) {
		return &build.Result{Image: b.img, Layers: infos}, nil
	}
	return Run(b.ctx, b.cfg,
		WithEnv(envOf(b.env)),
		WithStdout(&b.stdout),
		WithLogger(slog.New(slog.NewTextHandler(&b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		withStderr(&b.stderr),
		withWorkDir(filepath.Join(b.dir, "work")),
		withTempDir(b.tempBase),
		withBuilder(builder),
		withClient(b.client),
	)
}

// readDocument reads the findings-json file as generic JSON, to check the
// field names the issue promises.
func readDocument(t *testing.T, path string) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(readFile(t, path)), &doc); err != nil {
		t.Fatalf("findings-json is not JSON: %v", err)
	}
	return doc
}

// docFindings summarises the document's findings as "ID|severity|origin|path:line|status".
func docFindings(t *testing.T, doc map[string]any) []string {
	t.Helper()
	raw, ok := doc["findings"].([]any)
	if !ok {
		t.Fatalf("findings is not a list: %v", doc["findings"])
	}
	var out []string
	for _, r := range raw {
		f := r.(map[string]any)
		for _, k := range []string{"id", "kind", "severity", "package", "installed_version", "fixed_version", "title", "layer", "origin", "location"} {
			if _, ok := f[k]; !ok {
				t.Errorf("finding %v has no %q", f["id"], k)
			}
		}
		loc, _ := f["location"].(map[string]any)
		s := fmt.Sprintf("%v|%v|%v|%v:%v", f["id"], f["severity"], f["origin"], loc["path"], loc["line"])
		if st, ok := f["status"]; ok {
			s += "|" + fmt.Sprint(st)
		}
		out = append(out, s)
	}
	return out
}

const (
	wantSecret = "aws-access-key-id|CRITICAL|build|src/settings.conf:2"
	wantPip    = "CVE-2099-0003|CRITICAL|build|src/requirements.txt:3"
	wantDeb    = "CVE-2099-0001|HIGH|base|Dockerfile:1"
)

func TestRunScan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		setup      func(b *scanBed)
		wantCode   int
		wantErr    []string // substrings of the error
		wantDoc    []string // docFindings, in order
		wantCounts map[string]string
		wantPushed []string
		check      func(t *testing.T, b *scanBed)
	}{
		{
			name:       "report only",
			wantDoc:    []string{wantSecret, wantPip, wantDeb},
			wantCounts: map[string]string{"critical": "2", "high": "1", "medium": "0", "low": "0", "unknown": "0"},
			check: func(t *testing.T, b *scanBed) {
				table := b.stderr.String()
				t.Logf("findings table:\n%s", table)
				for _, s := range []string{"src/requirements.txt:3\n", "Dockerfile:1 (base image)\n", "CVE-2099-0003", "1.5.0 -> 2.0.0", "3 findings"} {
					if !strings.Contains(table, s) {
						t.Errorf("findings table misses %q:\n%s", s, table)
					}
				}
				// GitLab's section markers (ESC [0K) are not colours.
				if regexp.MustCompile(`\x1b\[[0-9;]*m`).MatchString(table) {
					t.Errorf("colours written to a non-terminal:\n%q", table)
				}
				if strings.Contains(b.stdout.String()+table+b.logs.String()+readFile(t, b.cfg.FindingsJSON), "AKIAZ3MSHIPDEMOKEY7Q") {
					t.Error("the secret's value leaked into an output")
				}
			},
		},
		{
			name:     "fail-on HIGH",
			setup:    func(b *scanBed) { b.cfg.FailOn = []string{"HIGH", "CRITICAL"} },
			wantCode: CodeGate,
			wantErr: []string{"3 findings at or above HIGH (fail-on): ", "CVE-2099-0003 in shipreq (src/requirements.txt:3)",
				"aws-access-key-id (src/settings.conf:2)", "CVE-2099-0001 in libshipdemo1 (Dockerfile:1)"},
			wantDoc:    []string{wantSecret, wantPip, wantDeb},
			wantCounts: map[string]string{"critical": "2", "high": "1"},
		},
		{
			name:       "fail-on HIGH ignoring the base",
			setup:      func(b *scanBed) { b.cfg.FailOn = []string{"HIGH"}; b.cfg.IgnoreBase = true },
			wantDoc:    []string{wantSecret, wantPip, wantDeb},
			wantCounts: map[string]string{"critical": "2", "high": "1"},
		},
		{
			name:       "severity filter",
			setup:      func(b *scanBed) { b.cfg.Severity = []string{"HIGH"}; b.cfg.FailOn = []string{"CRITICAL"} },
			wantDoc:    []string{wantDeb},
			wantCounts: map[string]string{"critical": "0", "high": "1"},
		},
		{
			name: "trivyignore in the context",
			setup: func(b *scanBed) {
				if err := os.WriteFile(filepath.Join(b.cfg.Context, ".trivyignore"), []byte("CVE-2099-0003\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				b.cfg.FailOn = []string{"CRITICAL"}
			},
			wantCode:   CodeGate,
			wantErr:    []string{"1 finding at or above CRITICAL (fail-on): aws-access-key-id (src/settings.conf:2)"},
			wantDoc:    []string{wantSecret, wantDeb},
			wantCounts: map[string]string{"critical": "1", "high": "1"},
		},
		{
			name: "scan-before-push: gate fails, nothing pushed",
			setup: func(b *scanBed) {
				b.cfg.Push, b.cfg.Tags, b.cfg.Output = true, []string{"registry.example/app:1"}, ""
				b.cfg.ScanBeforePush = true
				b.cfg.FailOn = []string{"CRITICAL"}
			},
			wantCode: CodeGate,
			wantErr:  []string{"2 findings at or above CRITICAL"},
			wantDoc:  []string{wantSecret, wantPip, wantDeb},
			check: func(t *testing.T, b *scanBed) {
				if b.lastJSON(t).Metadata.Pushed {
					t.Error("metadata says pushed")
				}
			},
		},
		{
			name: "scan-before-push: gate passes, pushed",
			setup: func(b *scanBed) {
				b.cfg.Push, b.cfg.Tags, b.cfg.Output = true, []string{"registry.example/app:1"}, ""
				b.cfg.ScanBeforePush = true
				b.cfg.FailOn = []string{"CRITICAL"}
				b.cfg.Scanners = []string{"vuln"}
				b.cfg.Severity = []string{"HIGH"}
			},
			wantDoc:    []string{wantDeb},
			wantPushed: []string{"registry.example/app:1"},
		},
		{
			name: "scan while pushing: pushed even when the gate fails",
			setup: func(b *scanBed) {
				b.cfg.Push, b.cfg.Tags, b.cfg.Output = true, []string{"registry.example/app:1"}, ""
				b.cfg.FailOn = []string{"CRITICAL"}
			},
			wantCode:   CodeGate,
			wantErr:    []string{"2 findings at or above CRITICAL"},
			wantDoc:    []string{wantSecret, wantPip, wantDeb},
			wantPushed: []string{"registry.example/app:1"},
		},
		{
			name: "compare-to, fail on new only",
			setup: func(b *scanBed) {
				b.cfg.CompareTo = "registry.example/app:main"
				b.cfg.FailOn = []string{"HIGH", "CRITICAL"}
				b.cfg.FailOnNewOnly = true
			},
			wantCode: CodeGate,
			wantErr:  []string{"2 findings at or above HIGH (fail-on, new only): "},
			wantDoc:  []string{wantSecret + "|new", wantPip + "|new", wantDeb + "|unchanged"},
		},
		{
			name: "compare-to missing: not compared",
			setup: func(b *scanBed) {
				b.cfg.CompareTo = "registry.example/app:nope"
			},
			wantDoc: []string{wantSecret, wantPip, wantDeb},
		},
		{
			name: "misconfig checks the Dockerfile",
			setup: func(b *scanBed) {
				if err := os.WriteFile(b.cfg.File, []byte("FROM debian:latest\nADD run.sh /app/\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				b.cfg.Scanners = []string{"misconfig"}
			},
			check: func(t *testing.T, b *scanBed) {
				doc := readDocument(t, b.cfg.FindingsJSON)
				found := false
				for _, f := range doc["findings"].([]any) {
					m := f.(map[string]any)
					if m["id"] == "DS-0001" {
						found = true
						loc := m["location"].(map[string]any)
						if m["kind"] != "misconfig" || loc["path"] != "Dockerfile" || loc["line"] != 1.0 {
							t.Errorf("DS-0001 = %v", m)
						}
					}
				}
				if !found {
					t.Errorf("no DS-0001 (latest tag) in %v", docFindings(t, doc))
				}
			},
		},
		{
			name:    "sbom",
			setup:   func(b *scanBed) { b.cfg.SBOM = "cyclonedx"; b.cfg.SBOMFile = filepath.Join(b.dir, "work", "sbom.json") },
			wantDoc: []string{wantSecret, wantPip, wantDeb},
			check: func(t *testing.T, b *scanBed) {
				sbom := readFile(t, b.cfg.SBOMFile)
				if !strings.Contains(sbom, `"bomFormat": "CycloneDX"`) || !strings.Contains(sbom, "shipreq") {
					t.Errorf("SBOM is not a CycloneDX document with the packages:\n%.400s", sbom)
				}
				if got := githubOutputs(t, b.githubOut)["sbom"]; got != b.cfg.SBOMFile {
					t.Errorf("sbom output %q, want %q", got, b.cfg.SBOMFile)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newScanBed(t)
			b.github()
			b.env["GITLAB_CI"] = "true"
			if tt.setup != nil {
				tt.setup(b)
			}
			err := b.run()
			if got := ExitCode(err); got != tt.wantCode {
				t.Fatalf("exit code %d (%v), want %d\nlogs:\n%s", got, err, tt.wantCode, b.logs.String())
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			doc := readDocument(t, b.cfg.FindingsJSON)
			if doc["digest"] != b.digest.String() {
				t.Errorf("document digest %v, want %s", doc["digest"], b.digest)
			}
			wantImage := b.digest.String()
			if len(b.cfg.Tags) > 0 {
				wantImage = b.cfg.Tags[0]
			}
			if doc["image"] != wantImage {
				t.Errorf("document image %v, want %s", doc["image"], wantImage)
			}
			if got := docFindings(t, doc); tt.wantDoc != nil && !slices.Equal(got, tt.wantDoc) {
				t.Errorf("findings\n got %q\nwant %q", got, tt.wantDoc)
			}
			gh := githubOutputs(t, b.githubOut)
			dotenv := readFile(t, filepath.Join(b.dir, "work", dotenvFile))
			js := b.lastJSON(t)
			if js.Scan == nil {
				t.Fatal("no scan in the JSON line")
			}
			jsCounts := map[string]int{"critical": js.Scan.Critical, "high": js.Scan.High, "medium": js.Scan.Medium,
				"low": js.Scan.Low, "unknown": js.Scan.Unknown}
			for k, v := range tt.wantCounts {
				if gh[k] != v {
					t.Errorf("GitHub output %s = %q, want %s", k, gh[k], v)
				}
				if line := "SHIP_" + strings.ToUpper(k) + "=" + v + "\n"; !strings.Contains(dotenv, line) {
					t.Errorf("ship.env has no %q:\n%s", line, dotenv)
				}
				if fmt.Sprint(jsCounts[k]) != v {
					t.Errorf("JSON line %s = %d, want %s", k, jsCounts[k], v)
				}
			}
			if gh["findings-json"] != b.cfg.FindingsJSON || js.Scan.FindingsJSON != b.cfg.FindingsJSON {
				t.Errorf("findings-json output %q / %q, want %q", gh["findings-json"], js.Scan.FindingsJSON, b.cfg.FindingsJSON)
			}
			sum := readFile(t, b.sum)
			if !strings.Contains(sum, "#### Top findings") || !strings.Contains(sum, "| 🟧 HIGH |") {
				t.Errorf("job summary has no findings section:\n%s", sum)
			}
			if !slices.Equal(b.client.pushed, tt.wantPushed) {
				t.Errorf("pushed %v, want %v", b.client.pushed, tt.wantPushed)
			}
			if tt.check != nil {
				tt.check(t, b)
			}
		})
	}
}

func TestScanConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--context", dir}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "defaults", check: func(t *testing.T, c Config) {
			if !c.Scan || !slices.Equal(c.Scanners, []string{"vuln", "secret"}) || len(c.FailOn) != 0 ||
				c.FindingsJSON != DefaultFindingsJSON || len(c.DBRepository) != 2 || c.ScanBeforePush {
				t.Errorf("defaults: %+v", c)
			}
			if p := c.policy(); len(p.FailOn) != 0 || len(p.Severity) != 0 {
				t.Errorf("default policy %+v, want report everything, fail on nothing", p)
			}
		}},
		{name: "policy", args: []string{"--fail-on", "high,critical", "--severity", "LOW", "--ignore-base", "--fail-on-new-only"},
			check: func(t *testing.T, c Config) {
				p := c.policy()
				if !slices.Equal(p.FailOn, []findings.Severity{findings.SeverityCritical, findings.SeverityHigh}) ||
					!slices.Equal(p.Severity, []findings.Severity{findings.SeverityLow}) || !p.IgnoreBase || !p.NewOnly {
					t.Errorf("policy %+v", p)
				}
			}},
		{name: "inputs from the environment", env: map[string]string{"INPUT_SCANNERS": "secret", "SHIP_SCAN": "false"},
			check: func(t *testing.T, c Config) {
				if c.Scan || !slices.Equal(c.Scanners, []string{"secret"}) {
					t.Errorf("scan %v scanners %v", c.Scan, c.Scanners)
				}
			}},
		{name: "sbom file default", args: []string{"--sbom", "spdx"}, check: func(t *testing.T, c Config) {
			if c.sbomFile() != "ship-sbom.spdx.json" {
				t.Errorf("sbom file %q", c.sbomFile())
			}
		}},
		{name: "unknown scanner", args: []string{"--scanners", "vuln,license"}, wantErr: `unknown scanner "license"`},
		{name: "bad severity", args: []string{"--severity", "HIGHEST"}, wantErr: `parsing severity "HIGHEST"`},
		{name: "bad fail-on", args: []string{"--fail-on", "sever"}, wantErr: `parsing severity "sever"`},
		{name: "bad sbom", args: []string{"--sbom", "syft"}, wantErr: `parsing SBOM format "syft"`},
		{name: "sbom-file alone", args: []string{"--sbom-file", "x.json"}, wantErr: "sbom-file needs sbom"},
		{name: "server URL", args: []string{"--trivy-server", "trivy:4954"}, wantErr: `trivy-server "trivy:4954": want an http(s) URL`},
		{name: "token without server", args: []string{"--trivy-server-token", "tok"}, wantErr: "trivy-server-token needs trivy-server"},
		{name: "missing vex", args: []string{"--vex", filepath.Join(dir, "nope.json")}, wantErr: "vex: " + filepath.Join(dir, "nope.json") + " does not exist"},
		{name: "missing ignore file", args: []string{"--trivyignores", filepath.Join(dir, ".nope")}, wantErr: "does not exist"},
		{name: "bad compare-to", args: []string{"--compare-to", "UPPER/case:x"}, wantErr: "compare-to"},
		{name: "bad db repository", args: []string{"--db-repository", "Bad Repo"}, wantErr: `db-repository "Bad Repo"`},
		{name: "scan-before-push without scan", args: []string{"--scan=false", "--scan-before-push"}, wantErr: "scan-before-push needs scan"},
		{name: "skip patterns", args: []string{"--skip-files", "**/*.pem", "--skip-file", "/app/key", "--skip-dirs", "/var/lib/apt/lists"},
			check: func(t *testing.T, c Config) {
				if !slices.Equal(c.SkipFiles, []string{"**/*.pem", "/app/key"}) || !slices.Equal(c.SkipDirs, []string{"/var/lib/apt/lists"}) {
					t.Errorf("skip files %q dirs %q", c.SkipFiles, c.SkipDirs)
				}
			}},
		{name: "bad skip-files pattern", args: []string{"--skip-files", "app/[a-"}, wantErr: `skip-files: "app/[a-" is not a valid path pattern`},
		{name: "empty skip-dirs pattern", env: map[string]string{"SHIP_SKIP_DIRS": "/"}, wantErr: `skip-dirs: "/" is not a valid path pattern`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(append(slices.Clone(base), tt.args...), envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || ExitCode(err) != CodeUsage {
					t.Fatalf("Load error %v (code %d), want %q (code %d)", err, ExitCode(err), tt.wantErr, CodeUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadScan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "image", args: []string{"registry.example/app:1", "--fail-on", "HIGH"}},
		{name: "no image", args: []string{"--fail-on", "HIGH"}, wantErr: "ship scan needs an image"},
		{name: "bad image", args: []string{"Not An Image"}, wantErr: "invalid image reference"},
		{name: "tags refused", args: []string{"registry.example/app:1", "--tag", "x/y:1"}, wantErr: "tags are not accepted"},
		{name: "bad flag", args: []string{"registry.example/app:1", "--fail-on", "nope"}, wantErr: "parsing severity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// No Dockerfile in the working directory: ship scan builds nothing.
			c, err := LoadScan(tt.args, envOf(map[string]string{"SHIP_CONTEXT": t.TempDir()}))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || ExitCode(err) != CodeUsage {
					t.Fatalf("LoadScan error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ScanImage != tt.args[0] || !c.Scan || c.Push {
				t.Errorf("config %+v", c)
			}
		})
	}
}

func TestRunScanImage(t *testing.T) {
	t.Parallel()
	b := newScanBed(t)
	b.github()
	b.cfg.ScanImage = "registry.example/app:main" // the base layer alone
	b.cfg.FailOn = []string{"HIGH", "CRITICAL"}
	err := b.run()
	if ExitCode(err) != CodeGate || fmt.Sprint(err) != "1 finding at or above HIGH (fail-on): CVE-2099-0001 in libshipdemo1" {
		t.Fatalf("error %v (code %d), want the gate on CVE-2099-0001", err, ExitCode(err))
	}
	got := docFindings(t, readDocument(t, b.cfg.FindingsJSON))
	if want := []string{"CVE-2099-0001|HIGH|base|:0"}; !slices.Equal(got, want) {
		t.Errorf("findings %q, want %q (no build location)", got, want)
	}
	if js := b.lastJSON(t); js.Scan == nil || js.Scan.High != 1 || !strings.HasPrefix(js.Image, "registry.example/app@sha256:") {
		t.Errorf("outputs %+v", js)
	}
	if sum := readFile(t, b.sum); strings.Contains(sum, "Build steps") || !strings.Contains(sum, "#### Top findings") || !strings.Contains(sum, "`registry.example/app`") {
		t.Errorf("job summary of ship scan:\n%s", sum)
	}
}

func TestGateMessage(t *testing.T) {
	t.Parallel()
	f := func(id, pkg string, sev findings.Severity, loc string) findings.Finding {
		p, l, _ := strings.Cut(loc, ":")
		var line int
		fmt.Sscan(l, &line)
		return findings.Finding{ID: id, Package: pkg, Severity: sev, Location: findings.Location{Path: p, Line: line}}
	}
	many := make([]findings.Finding, 7)
	for i := range many {
		many[i] = f(fmt.Sprintf("CVE-%d", i), "p", findings.SeverityCritical, "Dockerfile:2")
	}
	tests := []struct {
		name   string
		failOn []string
		gate   []findings.Finding
		want   string
	}{
		{name: "pass", failOn: []string{"HIGH"}, want: ""},
		{name: "one", failOn: []string{"CRITICAL", "HIGH"}, gate: []findings.Finding{f("CVE-1", "openssl", findings.SeverityHigh, "Dockerfile:3")},
			want: "1 finding at or above HIGH (fail-on): CVE-1 in openssl (Dockerfile:3)"},
		{name: "not contiguous", failOn: []string{"CRITICAL", "LOW"}, gate: []findings.Finding{f("aws-access-key-id", "", findings.SeverityCritical, "conf/app.ini:2")},
			want: "1 finding with severity CRITICAL, LOW (fail-on): aws-access-key-id (conf/app.ini:2)"},
		{name: "many", failOn: []string{"CRITICAL"}, gate: many,
			want: "7 findings at or above CRITICAL (fail-on): CVE-0 in p (Dockerfile:2), CVE-1 in p (Dockerfile:2), CVE-2 in p (Dockerfile:2), " +
				"CVE-3 in p (Dockerfile:2), CVE-4 in p (Dockerfile:2), and 2 more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := gateError(Config{FailOn: tt.failOn}, tt.gate)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("gate error %v, want none", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || ExitCode(err) != CodeGate {
				t.Errorf("gate error\n got %v (code %d)\nwant %s", err, ExitCode(err), tt.want)
			}
		})
	}
}

func TestLayerOrigins(t *testing.T) {
	t.Parallel()
	_, infos, _ := fixtureImages(t)
	got := layerOrigins(infos, "docker/app.Dockerfile", ".")
	if len(got) != 2 || !got[0].Base || got[1].Base ||
		got[0].Location != (findings.Location{Path: "docker/app.Dockerfile", Line: 1}) ||
		got[1].Location != (findings.Location{Path: "docker/app.Dockerfile", Line: 3}) ||
		got[1].ContextFiles["app/requirements.txt"] != "src/requirements.txt" ||
		got[1].DiffID != infos[1].DiffID.String() || got[1].Digest != infos[1].Digest.String() {
		t.Errorf("layerOrigins = %+v", got)
	}
	if got := layerOrigins(infos, "app/Dockerfile", "app"); got[1].ContextFiles["app/requirements.txt"] != "app/src/requirements.txt" {
		t.Errorf("layerOrigins with context app: %+v", got[1].ContextFiles)
	}
	for _, tt := range []struct{ workspace, ctx, file, want, ctxDir string }{
		{"", "/r", "/r/Dockerfile", "Dockerfile", "."},
		{"", "/r", "/r/docker/app.Dockerfile", "docker/app.Dockerfile", "."},
		{"", "/r/ctx", "/r/Dockerfile", "/r/Dockerfile", "."},
		{"/r", "/r/ctx", "/r/Dockerfile", "Dockerfile", "ctx"},
		{"/r", "/r/svc/api", "/r/svc/api/Dockerfile", "svc/api/Dockerfile", "svc/api"},
		{"/w", "/r", "/r/Dockerfile", "Dockerfile", "."},
	} {
		cfg := Config{Context: tt.ctx, File: tt.file, workspace: tt.workspace}
		if got := dockerfilePath(cfg); got != tt.want {
			t.Errorf("dockerfilePath(%s, %s, %s) = %q, want %q", tt.workspace, tt.ctx, tt.file, got, tt.want)
		}
		if got := contextDir(cfg); got != tt.ctxDir {
			t.Errorf("contextDir(%s, %s) = %q, want %q", tt.workspace, tt.ctx, got, tt.ctxDir)
		}
	}
}

func TestScanContextExcludes(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	cfg := Config{Context: root, Scan: true, FindingsJSON: filepath.Join(root, "ship-findings.json"),
		CacheDir: filepath.Join(root, ".ship-cache"), SBOM: "spdx", SBOMFile: filepath.Join(root, "out", "sbom.json"),
		SARIFFile: filepath.Join(root, "ship.sarif")}
	got := contextExcludes(cfg)
	want := []string{".ship-cache", "ship-findings.json", "out/sbom.json", "ship.sarif"}
	if !slices.Equal(got, want) {
		t.Errorf("contextExcludes = %q, want %q", got, want)
	}
	// The cache dir (layer cache) is left out without a scan too.
	cfg.Scan = false
	if got := contextExcludes(cfg); !slices.Equal(got, []string{".ship-cache"}) {
		t.Errorf("without scan, contextExcludes = %q, want the cache dir", got)
	}
}

func TestDefaultCompareTo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tags []string
		env  map[string]string
		want string
	}{
		{name: "GitHub pull request", tags: []string{"ghcr.io/o/app:pr-7"},
			env: map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_BASE_REF": "release/1.x"}, want: "ghcr.io/o/app:release-1.x"},
		{name: "GitLab merge request", tags: []string{"registry.example/g/app:abc", "registry.example/g/app:mr"},
			env: map[string]string{"GITLAB_CI": "true", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}, want: "registry.example/g/app:main"},
		{name: "push to a branch", tags: []string{"ghcr.io/o/app:main"}, env: map[string]string{"GITHUB_ACTIONS": "true"}},
		{name: "no tags", env: map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_BASE_REF": "main"}},
		{name: "the target is a tag written", tags: []string{"ghcr.io/o/app:main"},
			env: map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_BASE_REF": "main"}},
		{name: "locally", tags: []string{"ghcr.io/o/app:1"}, env: map[string]string{"GITHUB_BASE_REF": "main"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := defaultCompareTo(Config{Tags: tt.tags}, envOf(tt.env)); got != tt.want {
				t.Errorf("defaultCompareTo = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRunScanWithoutDB: a scan that cannot get a DB fails the run (code 5)
// only when something gates on it; report only, the build goes on.
func TestRunScanWithoutDB(t *testing.T) {
	t.Parallel()
	for _, failOn := range [][]string{nil, {"HIGH"}} {
		b := newScanBed(t)
		if err := os.RemoveAll(filepath.Join(b.cfg.CacheDir, "db")); err != nil {
			t.Fatal(err)
		}
		b.cfg.SkipDBUpdate = false // try the unreachable repository
		b.cfg.FailOn = failOn
		err := b.run()
		if failOn == nil {
			if err != nil {
				t.Errorf("report only: %v", err)
			}
			if !strings.Contains(b.logs.String(), "scan skipped") {
				t.Errorf("report only: no warning in the logs:\n%s", b.logs.String())
			}
			continue
		}
		if ExitCode(err) != CodeScan {
			t.Errorf("fail-on HIGH: err %v (code %d), want code %d", err, ExitCode(err), CodeScan)
		}
	}
}

// TestFindingsTableOrder: locations of one severity are ordered by path,
// then by line number, not as text (settings.conf:2 before :10).
func TestFindingsTableOrder(t *testing.T) {
	t.Parallel()
	f := func(p string, line int, sev findings.Severity) findings.Finding {
		return findings.Finding{ID: "x", Kind: findings.KindSecret, Severity: sev, Location: findings.Location{Path: p, Line: line}}
	}
	var b strings.Builder
	err := writeFindingsTable(&b, []findings.Finding{
		f("settings.conf", 10, findings.SeverityHigh), f("settings.conf", 2, findings.SeverityHigh),
		f("a.conf", 30, findings.SeverityHigh), f("z.conf", 1, findings.SeverityCritical),
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, ".conf:") {
			got = append(got, line)
		}
	}
	if want := []string{"z.conf:1", "a.conf:30", "settings.conf:2", "settings.conf:10"}; !slices.Equal(got, want) {
		t.Errorf("order %q, want %q", got, want)
	}
}
