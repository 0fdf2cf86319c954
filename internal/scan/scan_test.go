package scan

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	fixtures "github.com/aquasecurity/bolt-fixtures"
	tdb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"

	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/testbed"
)

// The image under test, as if built from:
//
//	1 FROM debian:12
//	2 WORKDIR /app
//	3 COPY src/ /app/
//	4 RUN make-tool
var (
	baseFiles = map[string]string{
		"etc/debian_version": "12.5\n",
		"etc/os-release":     "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
		"var/lib/dpkg/status": "Package: libshipdemo1\nStatus: install ok installed\nPriority: optional\n" +
			"Section: libs\nInstalled-Size: 100\nMaintainer: Ship Tests <tests@example.invalid>\n" +
			"Architecture: amd64\nSource: shipdemo\nVersion: 1.0-1\nDescription: fake library for ship's tests\n\n",
	}
	requirements = "# app dependencies\nflask-ship-none==0.1\nshipreq==1.5.0\n"
	settings     = "[aws]\naws_access_key_id = AKIAZ3MSHIPDEMOKEY7Q\nregion = eu-south-1\n"
	copyFiles    = map[string]string{
		"app/requirements.txt": requirements,
		"app/settings.conf":    settings,
	}
	runFiles = map[string]string{"usr/local/bin/make-tool": "#!/bin/sh\necho tool\n"}
	// source is the build context the COPY read.
	source = fstest.MapFS{
		"src/requirements.txt": {Data: []byte(requirements)},
		"src/settings.conf":    {Data: []byte(settings)},
	}
)

type fixtureImage struct {
	img     v1.Image
	diffIDs []string // base, copy, run
	origins []findings.LayerOrigin
}

func newFixtureImage(t *testing.T, run map[string]string) fixtureImage {
	t.Helper()
	layers := []v1.Layer{testbed.FilesLayer(t, baseFiles), testbed.FilesLayer(t, copyFiles), testbed.FilesLayer(t, run)}
	fi := fixtureImage{img: testbed.LinuxImage(t, layers...)}
	origins := []findings.LayerOrigin{
		{Base: true, Instruction: "FROM debian:12", Location: findings.Location{Path: "Dockerfile", Line: 1}},
		{Instruction: "COPY src/ /app/", Location: findings.Location{Path: "Dockerfile", Line: 3},
			ContextFiles: map[string]string{
				"app/requirements.txt": "src/requirements.txt",
				"app/settings.conf":    "src/settings.conf",
			}},
		{Instruction: "RUN make-tool", Location: findings.Location{Path: "Dockerfile", Line: 4}},
	}
	for i, l := range layers {
		origins[i].DiffID, origins[i].Digest = layerIDs(t, l)
		fi.diffIDs = append(fi.diffIDs, origins[i].DiffID)
	}
	fi.origins = origins
	return fi
}

// layerIDs are l's DiffID and digest, as a findings.LayerOrigin holds them.
func layerIDs(t *testing.T, l v1.Layer) (diffID, digest string) {
	t.Helper()
	d, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	dg, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String(), dg.String()
}

func fixtureFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "db", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no DB fixtures: %v", err)
	}
	return files
}

func freshMeta() metadata.Metadata {
	now := time.Now().UTC()
	return metadata.Metadata{Version: tdb.SchemaVersion, NextUpdate: now.Add(24 * time.Hour),
		UpdatedAt: now.Add(-time.Hour), DownloadedAt: now.Add(-time.Hour)}
}

func staleMeta() metadata.Metadata {
	now := time.Now().UTC()
	return metadata.Metadata{Version: tdb.SchemaVersion, NextUpdate: now.Add(-24 * time.Hour),
		UpdatedAt: now.Add(-48 * time.Hour), DownloadedAt: now.Add(-48 * time.Hour)}
}

// writeDB writes the fixture DB and its metadata into dbDir, as Trivy lays
// out cache-dir/db.
func writeDB(t *testing.T, dbDir string, meta metadata.Metadata) {
	t.Helper()
	if err := os.MkdirAll(dbDir, 0o700); err != nil {
		t.Fatal(err)
	}
	loader, err := fixtures.New(tdb.Path(dbDir), fixtureFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := loader.Load(); err != nil {
		t.Fatalf("loading DB fixtures: %v", err)
	}
	if err := loader.Close(); err != nil {
		t.Fatal(err)
	}
	if err := metadata.NewClient(dbDir).Update(meta); err != nil {
		t.Fatal(err)
	}
}

// cacheWithDB returns a new cache dir holding the fixture DB.
func cacheWithDB(t *testing.T, meta metadata.Metadata) string {
	t.Helper()
	dir := t.TempDir()
	writeDB(t, filepath.Join(dir, "db"), meta)
	return dir
}

// unreachable is a DB repository nothing listens on: a scan that tries to
// download fails there.
const unreachable = "127.0.0.1:1/aquasec/trivy-db:2"

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// want is the part of a finding a test checks.
type want struct {
	id, pkg, installed, fixed string
	kind                      findings.Kind
	sev                       findings.Severity
	layer                     int // index into fixtureImage.diffIDs
	origin                    findings.Origin
	loc                       findings.Location
	instr                     string
}

func checkFindings(t *testing.T, fi fixtureImage, got []findings.Finding, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		for _, f := range got {
			t.Logf("got %s %s %s %s layer %s", f.Kind, f.ID, f.Package, f.Severity, f.DiffID)
		}
		t.Fatalf("got %d findings, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		f := got[i]
		if f.ID != w.id || f.Kind != w.kind || f.Package != w.pkg || f.Severity != w.sev ||
			f.InstalledVersion != w.installed || f.FixedVersion != w.fixed {
			t.Errorf("finding %d = %s %s %q %s %s->%s; want %s %s %q %s %s->%s", i,
				f.Kind, f.ID, f.Package, f.Severity, f.InstalledVersion, f.FixedVersion,
				w.kind, w.id, w.pkg, w.sev, w.installed, w.fixed)
		}
		if f.DiffID != fi.diffIDs[w.layer] || f.LayerIndex != w.layer || f.Layer != fi.origins[w.layer].Digest {
			t.Errorf("%s: layer = %s (index %d, digest %s), want %s (index %d, digest %s)", f.ID,
				f.DiffID, f.LayerIndex, f.Layer, fi.diffIDs[w.layer], w.layer, fi.origins[w.layer].Digest)
		}
		if f.Origin != w.origin || f.Location != w.loc || f.Instruction != w.instr {
			t.Errorf("%s: origin %q location %q instruction %q; want %q %q %q", f.ID,
				f.Origin, f.Location, f.Instruction, w.origin, w.loc, w.instr)
		}
	}
}

func TestScanFindings(t *testing.T) {
	t.Parallel()
	fi := newFixtureImage(t, runFiles)
	dockerfile := func(line int) findings.Location { return findings.Location{Path: "Dockerfile", Line: line} }
	// With origins: the secret and the requirements.txt vulnerability
	// come from the COPY, the OS package's from the base.
	copiedSecret := want{id: "aws-access-key-id", kind: findings.KindSecret, sev: findings.SeverityCritical, layer: 1,
		origin: findings.OriginBuild, loc: findings.Location{Path: "src/settings.conf", Line: 2},
		instr: "COPY src/ /app/"}
	copiedVuln := want{id: "CVE-2099-0003", kind: findings.KindVulnerability, pkg: "shipreq", installed: "1.5.0", fixed: "2.0.0",
		sev: findings.SeverityCritical, layer: 1, origin: findings.OriginBuild,
		loc: findings.Location{Path: "src/requirements.txt", Line: 3}, instr: "COPY src/ /app/"}
	baseVuln := want{id: "CVE-2099-0001", kind: findings.KindVulnerability, pkg: "libshipdemo1", installed: "1.0-1",
		fixed: "1.0-2", sev: findings.SeverityHigh, layer: 0, origin: findings.OriginBase, loc: dockerfile(1)}

	tests := []struct {
		name  string
		opts  []Option
		wants []want
	}{
		{
			name:  "attributed with origins",
			opts:  []Option{WithOrigins(fi.origins), WithSource(source)},
			wants: []want{copiedSecret, copiedVuln, baseVuln},
		},
		{
			name: "foreign image without origins",
			wants: []want{
				{id: "aws-access-key-id", kind: findings.KindSecret, sev: findings.SeverityCritical, layer: 1,
					origin: findings.OriginBase},
				{id: "CVE-2099-0003", kind: findings.KindVulnerability, pkg: "shipreq", installed: "1.5.0", fixed: "2.0.0",
					sev: findings.SeverityCritical, layer: 1, origin: findings.OriginBase},
				{id: "CVE-2099-0001", kind: findings.KindVulnerability, pkg: "libshipdemo1", installed: "1.0-1",
					fixed: "1.0-2", sev: findings.SeverityHigh, layer: 0, origin: findings.OriginBase},
			},
		},
		{
			name:  "skip-files",
			opts:  []Option{WithOrigins(fi.origins), WithSource(source), WithSkipFiles("/app/settings.conf")},
			wants: []want{copiedVuln, baseVuln},
		},
		{
			name:  "skip-dirs",
			opts:  []Option{WithOrigins(fi.origins), WithSkipDirs("**/app")},
			wants: []want{baseVuln},
		},
		{
			name:  "secrets only",
			opts:  []Option{WithScanners(ScannerSecret), WithOrigins(fi.origins)},
			wants: []want{copiedSecret},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cache := cacheWithDB(t, freshMeta())
			opts := append([]Option{WithCacheDir(cache), WithDBRepositories(unreachable), WithLogger(testLogger(t))},
				tt.opts...)
			res, err := Scan(t.Context(), fi.img, opts...)
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			checkFindings(t, fi, res.Findings, tt.wants)
			if res.Stats.DBDownloaded || res.Stats.DBStale {
				t.Errorf("a fresh DB must be used as is: %+v", res.Stats)
			}
			for _, f := range res.Findings {
				if f.Kind == findings.KindSecret && (strings.Contains(f.Title, "AKIAZ3") || strings.Contains(f.Description, "AKIAZ3")) {
					t.Errorf("the secret leaked into the finding: %+v", f)
				}
			}
		})
	}
}

func TestScanOS(t *testing.T) {
	t.Parallel()
	fi := newFixtureImage(t, runFiles)
	res, err := Scan(t.Context(), fi.img, WithCacheDir(cacheWithDB(t, freshMeta())), WithDBRepositories(unreachable))
	if err != nil {
		t.Fatal(err)
	}
	if res.OS != "debian 12.5" {
		t.Errorf("OS = %q, want debian 12.5", res.OS)
	}
}

func TestLayerCache(t *testing.T) {
	t.Parallel()
	cache := cacheWithDB(t, freshMeta())
	first := newFixtureImage(t, runFiles)
	// second shares the base and COPY layers with first, not the RUN layer.
	second := newFixtureImage(t, map[string]string{"usr/local/bin/other-tool": "#!/bin/sh\n"})

	scan := func(fi fixtureImage) *Result {
		t.Helper()
		res, err := Scan(t.Context(), fi.img, WithCacheDir(cache), WithDBRepositories(unreachable), WithOrigins(fi.origins))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	sorted := func(s ...string) []string { s = slices.Clone(s); slices.Sort(s); return s }

	cold := scan(first)
	if got, want := cold.Stats.AnalysedLayers, sorted(first.diffIDs...); !slices.Equal(got, want) {
		t.Errorf("cold scan analysed %v, want every layer %v", got, want)
	}
	warm := scan(first)
	if len(warm.Stats.AnalysedLayers) != 0 || warm.Stats.CachedLayers() != 3 {
		t.Errorf("warm scan analysed %v (cached %d), want none", warm.Stats.AnalysedLayers, warm.Stats.CachedLayers())
	}
	if len(warm.Findings) != 3 || !slices.EqualFunc(cold.Findings, warm.Findings, func(a, b findings.Finding) bool { return a == b }) {
		t.Errorf("findings from the cache differ:\ncold %+v\nwarm %+v", cold.Findings, warm.Findings)
	}
	other := scan(second)
	if got, want := other.Stats.AnalysedLayers, []string{second.diffIDs[2]}; !slices.Equal(got, want) {
		t.Errorf("scan of an image sharing base and COPY layers analysed %v, want only its new layer %v", got, want)
	}
}

// dbArtifact returns Trivy's vulnerability DB as the OCI artifact Trivy
// downloads: one layer, db.tar.gz, of media type
// application/vnd.aquasec.trivy.db.layer.v1.tar+gzip.
func dbArtifact(t *testing.T) v1.Image {
	t.Helper()
	dbDir := t.TempDir()
	meta := freshMeta()
	meta.DownloadedAt = time.Time{} // set by the client after downloading
	writeDB(t, dbDir, meta)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range []string{"trivy.db", "metadata.json"} {
		b, err := os.ReadFile(filepath.Join(dbDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	layer := static.NewLayer(buf.Bytes(), "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip")
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, "application/vnd.aquasec.trivy.config.v1+json")
	img, err := mutate.Append(img, mutate.Addendum{Layer: layer,
		Annotations: map[string]string{"org.opencontainers.image.title": "db.tar.gz"}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// servedDB starts a registry serving the fixture DB as Trivy's OCI artifact
// and returns its repository (REGISTRY/aquasec/trivy-db:2).
func servedDB(t *testing.T) string {
	t.Helper()
	reg := testbed.StartRegistry(t)
	repo := reg.Host + "/aquasec/trivy-db:2"
	ref, err := name.ParseReference(repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, dbArtifact(t), remote.WithContext(t.Context())); err != nil {
		t.Fatalf("pushing DB artifact: %v", err)
	}
	return repo
}

func TestDBDownload(t *testing.T) {
	t.Parallel()
	good := servedDB(t)
	missing := strings.Replace(good, "/aquasec/", "/nobody/", 1)
	fi := newFixtureImage(t, runFiles)

	tests := []struct {
		name           string
		meta           *metadata.Metadata // DB already in the cache; nil: none
		repos          []string
		skip           bool
		wantDownloaded string // repository it came from
		wantStale      bool
		wantErr        []string // substrings of the error
	}{
		{name: "missing repository falls back to the next", repos: []string{missing, good}, wantDownloaded: good},
		{name: "network failure falls back to the next", repos: []string{unreachable, good}, wantDownloaded: good},
		{name: "fresh DB is not downloaded", meta: ptr(freshMeta()), repos: []string{good}},
		{name: "stale DB is replaced", meta: ptr(staleMeta()), repos: []string{good}, wantDownloaded: good},
		{name: "stale DB is used when every repository fails", meta: ptr(staleMeta()),
			repos: []string{missing, unreachable}, wantStale: true},
		{name: "skip update uses a stale DB as is", meta: ptr(staleMeta()), repos: []string{good}, skip: true},
		{name: "no DB and every repository fails", repos: []string{missing, unreachable},
			wantErr: []string{missing, unreachable, "db-repository", "cache-dir"}},
		{name: "skip update without a DB", repos: []string{good}, skip: true,
			wantErr: []string{"skip-db-update"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cache := t.TempDir()
			if tt.meta != nil {
				writeDB(t, filepath.Join(cache, "db"), *tt.meta)
			}
			res, err := Scan(t.Context(), fi.img, WithCacheDir(cache), WithDBRepositories(tt.repos...),
				WithSkipDBUpdate(tt.skip), WithScanners(ScannerVuln), WithLogger(testLogger(t)))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("Scan succeeded, want an error")
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if res.Stats.DBDownloaded != (tt.wantDownloaded != "") || res.Stats.DBRepository != tt.wantDownloaded {
				t.Errorf("downloaded = %v from %q, want from %q", res.Stats.DBDownloaded, res.Stats.DBRepository, tt.wantDownloaded)
			}
			if res.Stats.DBStale != tt.wantStale {
				t.Errorf("stale = %v, want %v", res.Stats.DBStale, tt.wantStale)
			}
			if tt.wantStale && res.Stats.DBAge < 47*time.Hour {
				t.Errorf("stale DB age = %v, want about 48h", res.Stats.DBAge)
			}
			var ids []string
			for _, f := range res.Findings {
				ids = append(ids, f.ID)
			}
			if !slices.Equal(ids, []string{"CVE-2099-0003", "CVE-2099-0001"}) {
				t.Errorf("findings with this DB = %v", ids)
			}
			if tt.wantDownloaded != "" {
				meta, err := metadata.NewClient(filepath.Join(cache, "db")).Get()
				if err != nil || time.Since(meta.DownloadedAt) > time.Minute {
					t.Errorf("metadata after download: %+v, %v", meta, err)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opt  Option
	}{
		{name: "no scanners", opt: WithScanners()},
		{name: "unknown scanner", opt: WithScanners("license")},
		{name: "empty cache dir", opt: WithCacheDir("")},
		{name: "no DB repositories", opt: WithDBRepositories(" ", "")},
		{name: "nil logger", opt: WithLogger(nil)},
		{name: "invalid file pattern", opt: WithSkipFiles("app/[a-")},
		{name: "empty directory pattern", opt: WithSkipDirs("/")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Scan(t.Context(), empty.Image, tt.opt); err == nil {
				t.Error("Scan accepted an invalid option")
			}
		})
	}
}

func TestIgnoreFilesAndVEX(t *testing.T) {
	t.Parallel()
	fi := newFixtureImage(t, runFiles)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	trivyignore := write(".trivyignore", "# accepted\nCVE-2099-0003\n")
	ignoreYAML := write(".trivyignore.yaml", "secrets:\n  - id: aws-access-key-id\n    statement: test key\n")
	openvex := write("vex.json", `{
  "@context": "https://openvex.dev/ns/v0.2.0",
  "@id": "https://example.invalid/vex/1",
  "author": "ship tests",
  "timestamp": "2026-01-01T00:00:00Z",
  "version": 1,
  "statements": [{
    "vulnerability": {"name": "CVE-2099-0003"},
    "products": [{"@id": "pkg:pypi/shipreq@1.5.0"}],
    "status": "not_affected",
    "justification": "vulnerable_code_not_in_execute_path"
  }]
}`)

	tests := []struct {
		name    string
		opts    []Option
		want    []string
		wantErr string
	}{
		{name: "no filters", want: []string{"aws-access-key-id", "CVE-2099-0003", "CVE-2099-0001"}},
		{name: "trivyignore drops an ID", opts: []Option{WithIgnoreFiles(trivyignore)},
			want: []string{"aws-access-key-id", "CVE-2099-0001"}},
		{name: "two ignore files", opts: []Option{WithIgnoreFiles(trivyignore, ignoreYAML)},
			want: []string{"CVE-2099-0001"}},
		{name: "OpenVEX not_affected drops the vulnerability", opts: []Option{WithVEX(openvex)},
			want: []string{"aws-access-key-id", "CVE-2099-0001"}},
		{name: "missing ignore file is an error", opts: []Option{WithIgnoreFiles(filepath.Join(dir, "nope"))},
			wantErr: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := append([]Option{WithCacheDir(cacheWithDB(t, freshMeta())), WithDBRepositories(unreachable),
				WithLogger(testLogger(t))}, tt.opts...)
			res, err := Scan(t.Context(), fi.img, opts...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, f := range res.Findings {
				ids = append(ids, f.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("findings = %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestWriteSBOM(t *testing.T) {
	t.Parallel()
	fi := newFixtureImage(t, runFiles)
	res, err := Scan(t.Context(), fi.img, WithCacheDir(cacheWithDB(t, freshMeta())), WithDBRepositories(unreachable))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		format string
		want   []string
	}{
		{name: "cyclonedx", format: "cyclonedx", want: []string{`"bomFormat": "CycloneDX"`, "pkg:deb/debian/libshipdemo1@1.0-1", "pkg:pypi/shipreq@1.5.0"}},
		{name: "spdx", format: "spdx-json", want: []string{`"spdxVersion": "SPDX-2.3"`, "libshipdemo1", "pkg:pypi/shipreq@1.5.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			format, err := ParseSBOMFormat(tt.format)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := res.WriteSBOM(t.Context(), &buf, format); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("SBOM lacks %q:\n%.2000s", w, buf.String())
				}
			}
		})
	}
	if _, err := ParseSBOMFormat("xml"); err == nil {
		t.Error("ParseSBOMFormat accepted xml")
	}
}

func TestParseScanners(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []Scanner
		wantErr string
	}{
		{name: "default list", in: "vuln,secret", want: []Scanner{ScannerVuln, ScannerSecret}},
		{name: "spaces, case, newlines, duplicates", in: " Secret\nvuln, secret ", want: []Scanner{ScannerSecret, ScannerVuln}},
		{name: "misconfig", in: "vuln,MISCONFIG", want: []Scanner{ScannerVuln, ScannerMisconfig}},
		{name: "unknown", in: "license", wantErr: "unknown scanner"},
		{name: "empty", in: " , ", wantErr: "no scanner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseScanners(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("ParseScanners(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestNoStdout checks that a scan writes nothing to stdout, which belongs to
// ship's outputs. Not parallel: it swaps os.Stdout while the parallel tests
// wait.
func TestNoStdout(t *testing.T) {
	fi := newFixtureImage(t, runFiles)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = stdout }()
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()

	_, scanErr := Scan(t.Context(), fi.img, WithCacheDir(cacheWithDB(t, freshMeta())), WithDBRepositories(unreachable))
	_, dfErr := ScanDockerfile(t.Context(), "Dockerfile", []byte("FROM debian:latest\n"))
	os.Stdout = stdout
	w.Close()
	out := <-done
	if scanErr != nil || dfErr != nil {
		t.Fatalf("scan: %v; Dockerfile: %v", scanErr, dfErr)
	}
	if len(out) > 0 {
		t.Errorf("scanning wrote to stdout:\n%s", out)
	}
}

// TestPrepareDB: PrepareDB downloads the DB as Scan would, so that a Scan
// after it finds it fresh; fails as Scan would; does nothing when no local
// DB is needed.
func TestPrepareDB(t *testing.T) {
	t.Parallel()
	good := servedDB(t)

	cache := t.TempDir()
	db := PrepareDB(t.Context(), WithCacheDir(cache), WithDBRepositories(unreachable, good), WithLogger(testLogger(t)))
	if db.Err() != nil || db.Repository() != good {
		t.Fatalf("PrepareDB = %q, %v; want downloaded from %s", db.Repository(), db.Err(), good)
	}
	fi := newFixtureImage(t, runFiles)
	res, err := Scan(t.Context(), fi.img, WithCacheDir(cache), WithDBRepositories(unreachable),
		WithScanners(ScannerVuln), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("Scan after PrepareDB: %v", err)
	}
	if res.Stats.DBDownloaded || res.Stats.DBStale || len(res.Findings) == 0 {
		t.Errorf("Scan after PrepareDB: stats %+v, %d findings; want the prepared DB used as is", res.Stats, len(res.Findings))
	}

	// A failure: Scan given the outcome fails the same way without asking
	// the repository again.
	var hits atomic.Int32
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	failingRepo := strings.TrimPrefix(failing.URL, "http://") + "/aquasec/trivy-db:2"
	noDB := t.TempDir()
	failed := PrepareDB(t.Context(), WithCacheDir(noDB), WithDBRepositories(failingRepo), WithInsecureRegistry(true), WithLogger(testLogger(t)))
	if err := failed.Err(); err == nil || !strings.Contains(err.Error(), "db-repository") {
		t.Errorf("PrepareDB without any DB: %v, want Scan's error naming db-repository", err)
	}
	before := hits.Load()
	if before == 0 {
		t.Fatal("PrepareDB did not try the repository")
	}
	_, err = Scan(t.Context(), fi.img, WithCacheDir(noDB), WithDBRepositories(failingRepo), WithInsecureRegistry(true),
		WithScanners(ScannerVuln), WithLogger(testLogger(t)), WithDBOutcome(failed))
	if err == nil || err.Error() != failed.Err().Error() {
		t.Errorf("Scan with the failed outcome: %v, want %v", err, failed.Err())
	}
	if n := hits.Load(); n != before {
		t.Errorf("Scan with the failed outcome asked the repository again (%d requests, %d before)", n, before)
	}
	for _, opt := range []Option{WithScanners(ScannerSecret), WithServer("http://127.0.0.1:1", nil)} {
		empty := t.TempDir()
		if db := PrepareDB(t.Context(), WithCacheDir(empty), WithDBRepositories(unreachable), opt); db.Repository() != "" || db.Err() != nil {
			t.Errorf("PrepareDB when no local DB is needed = %q, %v", db.Repository(), db.Err())
		}
		if entries, _ := os.ReadDir(empty); len(entries) != 0 {
			t.Errorf("PrepareDB when no local DB is needed wrote %d entries in the cache dir", len(entries))
		}
	}
}
