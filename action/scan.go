package action

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/build"
	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/report/sarif"
	"github.com/intesys/ship-action/internal/scan"
)

// scanTarget is what one scan looks at: the image, its name in reports,
// and, for an image ship built, where its layers came from.
type scanTarget struct {
	img      v1.Image
	name     string                 // first tag, or the reference scanned
	origins  []findings.LayerOrigin // empty for an image built elsewhere
	source   fs.FS                  // the build context; nil for ship scan
	platform v1.Platform            // for compare-to
	// dockerfile and its path as findings show it; empty for ship scan.
	dockerfile, dockerfilePath string
	// db is the DB preparation done during the build; nil: the scan
	// prepares the DB itself.
	db *scan.DBOutcome
}

// scanOutcome is what the scan step found and decided.
type scanOutcome struct {
	result     *scan.Result
	all        []findings.Finding // every finding, with a status when compared
	reported   []findings.Finding // what the policy reports
	gate       []findings.Finding // what fails the run
	comparedTo string             // the image compared to; "" when none was read
	sbom       []byte             // the SBOM, once sbomDocument rendered it
}

// sbomDocument is the scan's SBOM in the format of the sbom input,
// rendered once: the SBOM file and the SBOM attached to the image are the
// same bytes.
func (sc *scanOutcome) sbomDocument(ctx context.Context, cfg Config) ([]byte, error) {
	if sc.sbom != nil {
		return sc.sbom, nil
	}
	format, err := scan.ParseSBOMFormat(cfg.SBOM)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := sc.result.WriteSBOM(ctx, &buf, format); err != nil {
		return nil, err
	}
	sc.sbom = buf.Bytes()
	return sc.sbom, nil
}

// scanOptions turns the scan inputs into scan options (origins, source and
// name excluded).
func scanOptions(cfg Config, lookup LookupEnv, log *slog.Logger) ([]scan.Option, error) {
	scanners, err := scan.ParseScanners(strings.Join(cfg.Scanners, ","))
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	dir, err := scanCacheDir(cfg, lookup)
	if err != nil {
		return nil, withCode(CodeUsage, err)
	}
	opts := []scan.Option{
		scan.WithScanners(scanners...),
		scan.WithCacheDir(dir),
		scan.WithSkipDBUpdate(cfg.SkipDBUpdate),
		scan.WithLogger(log),
	}
	if len(cfg.DBRepository) > 0 {
		opts = append(opts, scan.WithDBRepositories(cfg.DBRepository...))
	}
	if insecureDB(cfg) {
		opts = append(opts, scan.WithInsecureRegistry(true))
	}
	if files := cfg.ignoreFiles(); len(files) > 0 {
		opts = append(opts, scan.WithIgnoreFiles(files...))
	}
	if len(cfg.VEX) > 0 {
		opts = append(opts, scan.WithVEX(cfg.VEX...))
	}
	if len(cfg.SkipFiles) > 0 {
		opts = append(opts, scan.WithSkipFiles(cfg.SkipFiles...))
	}
	if len(cfg.SkipDirs) > 0 {
		opts = append(opts, scan.WithSkipDirs(cfg.SkipDirs...))
	}
	if cfg.TrivyServer != "" {
		h := http.Header{}
		if cfg.TrivyServerToken != "" {
			h.Set("Trivy-Token", cfg.TrivyServerToken)
		}
		opts = append(opts, scan.WithServer(cfg.TrivyServer, h))
	}
	return opts, nil
}

// insecureDB reports whether a DB repository is on an insecure registry.
func insecureDB(cfg Config) bool {
	for _, r := range cfg.DBRepository {
		ref, err := name.ParseReference(r)
		if err != nil {
			continue
		}
		if slices.Contains(cfg.InsecureRegistries, ref.Context().RegistryStr()) {
			return true
		}
	}
	return false
}

// runScan scans t (and compare-to when set), applies the policy and
// returns the outcome. Errors carry CodeScan or CodeUsage.
func runScan(ctx context.Context, cfg Config, t scanTarget, client imageClient, lookup LookupEnv, log *slog.Logger) (*scanOutcome, error) {
	base, err := scanOptions(cfg, lookup, log)
	if err != nil {
		return nil, err
	}
	if t.db != nil {
		// Not again after the repositories failed during the build (nor
		// for compare-to).
		base = append(base, scan.WithDBOutcome(t.db))
	}
	opts := append(slices.Clone(base), scan.WithImageName(t.name), scan.WithOrigins(t.origins))
	if t.source != nil {
		opts = append(opts, scan.WithSource(t.source))
	}
	log.Info("scanning", "image", t.name)
	start := time.Now()
	res, err := scan.Scan(ctx, t.img, opts...)
	if err != nil {
		return nil, withCode(CodeScan, fmt.Errorf("scanning %s: %w", t.name, err))
	}
	if res.Stats.DBStale {
		log.Warn("the vulnerability DB could not be updated; scanning with the cached one",
			"age", res.Stats.DBAge.Round(time.Hour).String())
	}
	all := slices.Clone(res.Findings)
	if slices.Contains(cfg.Scanners, string(scan.ScannerMisconfig)) && t.dockerfile != "" {
		content, err := os.ReadFile(t.dockerfile)
		if err != nil {
			return nil, withCode(CodeScan, fmt.Errorf("checking the Dockerfile: %w", err))
		}
		mis, err := scan.ScanDockerfile(ctx, t.dockerfilePath, content, scan.WithLogger(log))
		if err != nil {
			return nil, withCode(CodeScan, err)
		}
		all = append(all, mis...)
	}
	log.Info("scanned", "findings", len(all), "layers", res.Stats.Layers,
		"cached_layers", res.Stats.CachedLayers(), "duration", time.Since(start).Round(time.Millisecond))

	out := &scanOutcome{result: res}
	implicit := false
	if cfg.CompareTo == "" {
		cfg.CompareTo = defaultCompareTo(cfg, lookup)
		implicit = cfg.CompareTo != ""
	}
	if cfg.CompareTo != "" {
		prev, err := scanCompareTo(ctx, cfg, t.platform, base, client, log, implicit)
		if err != nil {
			return nil, err
		}
		if prev != nil {
			all = findings.Diff(all, prev)
			out.comparedTo = cfg.CompareTo
		}
	}
	findings.Sort(all)
	pol := cfg.policy()
	out.all = all
	out.reported = pol.Filter(all)
	out.gate = pol.Gate(all)
	return out, nil
}

// scanCompareTo scans the compare-to image and returns its findings, or
// nil, with a warning, when it cannot be read (a first build has nothing
// to compare to).
func scanCompareTo(ctx context.Context, cfg Config, platform v1.Platform, base []scan.Option, client imageClient, log *slog.Logger, implicit bool) ([]findings.Finding, error) {
	img, err := client.Image(ctx, cfg.CompareTo, platform)
	if err == nil {
		_, err = img.Digest() // fetches the manifest when lazy
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, withCode(CodeScan, ctx.Err())
		}
		level := slog.LevelWarn
		if implicit {
			level = slog.LevelInfo // the target branch may have no image yet
		}
		log.Log(ctx, level, "compare-to image not readable: findings are not compared", "image", cfg.CompareTo, "error", err.Error())
		return nil, nil
	}
	log.Info("scanning the image compared to", "image", cfg.CompareTo)
	res, err := scan.Scan(ctx, img, append(slices.Clone(base), scan.WithImageName(cfg.CompareTo))...)
	if err != nil {
		return nil, withCode(CodeScan, fmt.Errorf("scanning compare-to %s: %w", cfg.CompareTo, err))
	}
	return res.Findings, nil
}

// defaultCompareTo returns the image a pull or merge request is compared
// to when compare-to is not set: the first tag's repository with the
// target branch as tag (GitHub's GITHUB_BASE_REF, GitLab's
// CI_MERGE_REQUEST_TARGET_BRANCH_NAME; characters a tag cannot hold become
// "-"). It returns "" outside a pull request, without tags, or when that
// is one of the tags being written.
func defaultCompareTo(cfg Config, lookup LookupEnv) string {
	if cfg.ScanImage != "" || len(cfg.Tags) == 0 {
		return ""
	}
	branch, _ := lookup("GITHUB_BASE_REF")
	if v, _ := lookup("GITHUB_ACTIONS"); v != "true" {
		branch = ""
	}
	if branch == "" {
		if v, _ := lookup("GITLAB_CI"); v == "true" {
			branch, _ = lookup("CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
		}
	}
	if branch == "" {
		return ""
	}
	tag := strings.Map(func(r rune) rune {
		if r == '_' || r == '.' || r == '-' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			return r
		}
		return '-'
	}, branch)
	tag = strings.TrimLeft(tag, ".-")
	if len(tag) > 128 {
		tag = tag[:128]
	}
	first, err := parseTag(cfg.Tags[0])
	if err != nil || tag == "" {
		return ""
	}
	ref := first.Context().Name() + ":" + tag
	for _, t := range cfg.Tags {
		if pt, err := parseTag(t); err == nil && pt.Name() == ref {
			return ""
		}
	}
	return ref
}

// layerOrigins converts the build's layer descriptions; dockerfilePath is
// the Dockerfile's path as findings show it, contextDir the build
// context's path relative to the repository ("." at its root): the files a
// COPY took are shown below it.
func layerOrigins(layers []build.LayerInfo, dockerfilePath, contextDir string) []findings.LayerOrigin {
	out := make([]findings.LayerOrigin, 0, len(layers))
	for _, l := range layers {
		o := findings.LayerOrigin{
			DiffID:      l.DiffID.String(),
			Digest:      l.Digest.String(),
			Base:        l.Base,
			Instruction: l.Instruction,
		}
		if len(l.ContextFiles) > 0 {
			o.ContextFiles = make(map[string]string, len(l.ContextFiles))
			for img, src := range l.ContextFiles {
				o.ContextFiles[img] = path.Join(contextDir, src)
			}
		}
		if l.Location.Line > 0 || l.Location.File != "" {
			o.Location = findings.Location{Path: dockerfilePath, Line: l.Location.Line}
		}
		out = append(out, o)
	}
	return out
}

// dockerfilePath returns the Dockerfile's path as a user of the
// repository sees it, slash separated: relative to the repository root
// (the workspace) when it is inside, else relative to the context when it
// is inside that, else as given.
func dockerfilePath(cfg Config) string {
	if rel, ok := repoPath(cfg, cfg.File); ok {
		return rel
	}
	if rel, ok := within(cfg.Context, cfg.File); ok {
		return rel
	}
	return filepath.ToSlash(filepath.Clean(cfg.File))
}

// contextDir returns the build context's path relative to the repository
// root, "." when it is the root or outside the repository (files are then
// shown relative to the context).
func contextDir(cfg Config) string {
	if rel, ok := repoPath(cfg, cfg.Context); ok {
		return rel
	}
	return "."
}

// repoPath returns p relative to the repository root (cfg.workspace, or
// the working directory), slash separated, when p is inside it.
func repoPath(cfg Config, p string) (string, bool) {
	root := cfg.workspace
	if root == "" {
		root = "."
	}
	return within(root, p)
}

// within returns p relative to dir, slash separated, when p is inside dir.
func within(dir, p string) (string, bool) {
	dirAbs, err1 := filepath.Abs(dir)
	pAbs, err2 := filepath.Abs(p)
	if err1 != nil || err2 != nil {
		return "", false
	}
	rel, err := filepath.Rel(dirAbs, pAbs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// writeScanFiles writes the findings document, the SARIF log and the SBOM
// when asked, and returns their paths (and the SARIF log).
func writeScanFiles(ctx context.Context, cfg Config, sc *scanOutcome, image, digest string) (files scanFiles, err error) {
	if cfg.FindingsJSON != "" {
		doc := findings.NewDocument(image, digest, sc.reported)
		b, err := findings.Marshal(doc)
		if err != nil {
			return files, err
		}
		if err := writeFileAtomic(cfg.FindingsJSON, b); err != nil {
			return files, err
		}
		files.findings = cfg.FindingsJSON
	}
	if cfg.SARIFFile != "" {
		var buf bytes.Buffer
		in := sarif.Input{Image: image, Digest: digest, Findings: sarifFindings(sc.reported)}
		if err := sarif.Write(&buf, in); err != nil {
			return files, err
		}
		if err := writeFileAtomic(cfg.SARIFFile, buf.Bytes()); err != nil {
			return files, err
		}
		files.sarif, files.sarifLog = cfg.SARIFFile, buf.Bytes()
	}
	if p := cfg.sbomFile(); p != "" {
		doc, err := sc.sbomDocument(ctx, cfg)
		if err != nil {
			return files, err
		}
		if err := writeFileAtomic(p, doc); err != nil {
			return files, err
		}
		files.sbom = p
	}
	return files, nil
}

// scanFiles are the files a scan wrote; "" when not asked.
type scanFiles struct {
	findings, sarif, sbom string
	sarifLog              []byte // the SARIF log, for the upload
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// gateError is the error of a failed gate: exit code CodeGate and a line
// naming the findings, e.g. "2 findings at or above HIGH (fail-on):
// CVE-2099-1 in openssl (Dockerfile:1), aws-access-key-id (conf/app.ini:2)".
func gateError(cfg Config, gate []findings.Finding) error {
	if len(gate) == 0 {
		return nil
	}
	pol := cfg.policy()
	noun := "findings"
	if len(gate) == 1 {
		noun = "finding"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s %s (fail-on", len(gate), noun, severityPhrase(pol.FailOn))
	if cfg.FailOnNewOnly {
		b.WriteString(", new only")
	}
	if cfg.IgnoreBase {
		b.WriteString(", base ignored")
	}
	b.WriteString("): ")
	const shown = 5
	for i, f := range gate {
		if i == shown {
			fmt.Fprintf(&b, ", and %d more", len(gate)-shown)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(findingShort(f))
	}
	return &ExitError{Code: CodeGate, Err: fmt.Errorf("%s", b.String())}
}

// severityPhrase says which severities a list holds: "at or above HIGH"
// when it is every severity from one up, else "with severity LOW, HIGH".
func severityPhrase(sevs []findings.Severity) string {
	if len(sevs) == 0 {
		return ""
	}
	lowest := slices.Min(sevs)
	contiguous := true
	for s := lowest; s <= findings.SeverityCritical; s++ {
		contiguous = contiguous && slices.Contains(sevs, s)
	}
	if contiguous {
		return "at or above " + lowest.String()
	}
	names := make([]string, len(sevs))
	for i, s := range sevs {
		names[i] = s.String()
	}
	return "with severity " + strings.Join(names, ", ")
}

// findingShort is "ID in package (location)", "ID (location)" without a
// package, with "in image path" when the location is unknown.
func findingShort(f findings.Finding) string {
	s := f.ID
	if f.Package != "" {
		s += " in " + f.Package
	}
	switch {
	case !f.Location.IsZero():
		s += " (" + f.Location.String() + ")"
	case f.Path != "":
		s += " (/" + strings.TrimPrefix(f.Path, "/") + ")"
	}
	return s
}

// finishScan writes the findings document, the SBOM and the findings table
// (stderr), and returns the scan outputs.
func finishScan(ctx context.Context, cfg Config, sc *scanOutcome, image, digest string, stderr io.Writer) (*ScanOutputs, error) {
	files, err := writeScanFiles(ctx, cfg, sc, image, digest)
	if err != nil {
		return nil, withCode(CodeInternal, err)
	}
	if err := writeFindingsTable(stderr, sc.reported, isTerminal(stderr) && os.Getenv("NO_COLOR") == ""); err != nil {
		return nil, withCode(CodeInternal, fmt.Errorf("writing the findings table: %w", err))
	}
	return newScanOutputs(sc, files), nil
}
