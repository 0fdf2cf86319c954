package scan

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	tdb "github.com/aquasecurity/trivy-db/pkg/db"
	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy/pkg/cache"
	trivydb "github.com/aquasecurity/trivy/pkg/db"
	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	"github.com/aquasecurity/trivy/pkg/fanal/applier"
	"github.com/aquasecurity/trivy/pkg/fanal/artifact"
	artimage "github.com/aquasecurity/trivy/pkg/fanal/artifact/image"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	"github.com/aquasecurity/trivy/pkg/fanal/walker"
	"github.com/aquasecurity/trivy/pkg/javadb"
	"github.com/aquasecurity/trivy/pkg/result"
	"github.com/aquasecurity/trivy/pkg/rpc/client"
	tscan "github.com/aquasecurity/trivy/pkg/scan"
	"github.com/aquasecurity/trivy/pkg/scan/langpkg"
	"github.com/aquasecurity/trivy/pkg/scan/local"
	"github.com/aquasecurity/trivy/pkg/scan/ospkg"
	"github.com/aquasecurity/trivy/pkg/types"
	"github.com/aquasecurity/trivy/pkg/vex"
	"github.com/aquasecurity/trivy/pkg/vulnerability"
	xos "github.com/aquasecurity/trivy/pkg/x/os"

	"github.com/intesys/ship-action/internal/findings"
)

// trivyMu serialises scans in this process. Trivy keeps the open
// vulnerability DB, the Java DB updater and its logger in package-level
// variables (trivy-db's db.Init, javadb.Init, slog's default logger), so two
// scans at once would close each other's DB or swap each other's logger. It
// is the one piece of package-level state here, forced by the library.
var trivyMu sync.Mutex

// Result is what Scan found.
type Result struct {
	// Findings are sorted (findings.Sort) and attributed (WithOrigins).
	Findings []findings.Finding
	// OS is the detected operating system, e.g. "debian 12.5"; empty when
	// none was detected.
	OS string
	// Stats tells what the scan did, for logs and tests.
	Stats Stats

	mu     sync.Mutex   // Trivy's SBOM encoders modify the report they read
	report types.Report // for WriteSBOM
}

// Stats counts the work a scan did.
type Stats struct {
	// Layers is the number of layers in the image.
	Layers int
	// AnalysedLayers lists the DiffIDs of the layers analysed in this scan;
	// the others were found in the layer cache (cache-dir/fanal).
	AnalysedLayers []string
	// DBDownloaded is true when the vulnerability DB was downloaded, from
	// DBRepository.
	DBDownloaded bool
	DBRepository string
	// DBStale is true when the download failed and the older DB of the cache
	// was used; DBAge is its age then.
	DBStale bool
	DBAge   time.Duration
	// Duration is the time the scan took, DB preparation included.
	Duration time.Duration
}

// CachedLayers returns how many layers were taken from the layer cache.
func (s Stats) CachedLayers() int { return s.Layers - len(s.AnalysedLayers) }

// Scan scans img, which ship holds in memory (no pull, no tarball), with
// Trivy's image artifact and local scan service (or a Trivy server, see
// WithServer), and returns its findings. See the package documentation for
// the analyzers it runs.
func Scan(ctx context.Context, img v1.Image, opts ...Option) (*Result, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}

	trivyMu.Lock()
	defer trivyMu.Unlock()
	return scanLocked(ctx, img, o)
}

// scanLocked is Scan with trivyMu held.
func scanLocked(ctx context.Context, img v1.Image, o *options) (*Result, error) {
	start := time.Now()
	restore := routeTrivyLogs(o.logger)
	defer restore()

	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	manifest, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading image manifest: %w", err)
	}

	artCache, fsCache, err := o.layerCache(ctx)
	if err != nil {
		return nil, err
	}
	if fsCache != nil {
		defer fsCache.Close()
	}
	var (
		st      dbState
		backend tscan.Backend
	)
	if o.serverURL != "" {
		// Client/server mode, as Trivy's createRemoteService: the server
		// holds the DB and the layer cache; layers it lacks are analysed
		// here and sent to it.
		backend = client.NewService(client.ServiceOption{RemoteURL: o.serverURL, CustomHeaders: o.serverHeaders})
	} else {
		if o.has(ScannerVuln) {
			if o.db != nil {
				// Prepared earlier in this run (PrepareDB): its outcome.
				if st, err = o.db.state, o.db.err; err == nil && st.stale {
					warnStale(ctx, o.logger, st)
				}
			} else {
				st, err = prepareDB(ctx, o)
			}
			if err != nil {
				return nil, err
			}
			if err := trivydb.Init(trivydb.Dir(o.cacheDir)); err != nil {
				return nil, fmt.Errorf("opening vulnerability DB in %s: %w", trivydb.Dir(o.cacheDir), err)
			}
			defer trivydb.Close()
		}
		backend = local.NewService(applier.NewApplier(fsCache), ospkg.NewScanner(), langpkg.NewScanner(),
			vulnerability.NewClient(tdb.Config{}))
	}
	counting := &countingCache{ArtifactCache: artCache}

	art, err := o.newArtifact(img, counting)
	if err != nil {
		return nil, fmt.Errorf("preparing image analysis: %w", err)
	}
	report, err := tscan.NewService(backend, art).ScanArtifact(ctx, o.scanOptions())
	if err != nil {
		return nil, fmt.Errorf("scanning image: %w", oneLineErr(err))
	}

	if err := o.filter(ctx, report); err != nil {
		return nil, err
	}

	res := &Result{
		Findings: convert(report, cfg, manifest, findings.Attribution{Origins: o.origins, Source: o.source}),
		Stats: Stats{
			Layers:         len(cfg.RootFS.DiffIDs),
			AnalysedLayers: counting.analysed(),
			DBDownloaded:   st.downloaded,
			DBRepository:   st.repository,
			DBStale:        st.stale,
			DBAge:          st.age,
		},
		report: report,
	}
	if report.Metadata.OS != nil {
		res.OS = strings.TrimSpace(string(report.Metadata.OS.Family) + " " + report.Metadata.OS.Name)
	}
	res.Stats.Duration = time.Since(start)
	o.logger.DebugContext(ctx, "scan done", slog.Int("findings", len(res.Findings)),
		slog.Int("layers", res.Stats.Layers), slog.Int("analysed", len(res.Stats.AnalysedLayers)),
		slog.Duration("took", res.Stats.Duration))
	return res, nil
}

// layerCache opens the layer cache the analysis reads and writes: the
// Trivy server's in client/server mode, else the FS cache in the cache dir
// (returned as fs too, for the local scan and for the caller to close). It
// also points Trivy at the Java DB, which the jar analyser reads (on this
// side in client/server mode too; downloaded only when a jar is found).
func (o *options) layerCache(ctx context.Context) (c cache.ArtifactCache, fs *cache.FSCache, err error) {
	if o.has(ScannerVuln) {
		javadb.Init(o.cacheDir, o.javaDBRefs(), o.skipDBUpdate, true, ftypes.RegistryOptions{Insecure: o.insecure})
	}
	if o.serverURL != "" {
		return cache.NewRemoteCache(ctx, cache.RemoteOptions{ServerAddr: o.serverURL, CustomHeaders: o.serverHeaders}), nil, nil
	}
	fsCache, err := cache.NewFSCache(o.cacheDir)
	if err != nil {
		return nil, nil, fmt.Errorf("opening layer cache in %s: %w", o.cacheDir, err)
	}
	return fsCache, &fsCache, nil
}

// newArtifact is Trivy's image artifact of img, analysing into c. Its
// options are part of every layer's cache key: AnalyseBase and Scan must
// make it the same way.
func (o *options) newArtifact(img v1.Image, c cache.ArtifactCache) (artifact.Artifact, error) {
	return artimage.NewArtifact(&trivyImage{Image: img, name: o.imageName}, c, artifact.Option{
		DisabledAnalyzers: o.disabledAnalyzers(),
		WalkerOption:      o.walkerOption(),
		Parallel:          5, // Trivy's default
		NoProgress:        true,
		Insecure:          o.insecure,
	})
}

// walkerOption skips o's files and directories. Trivy skips a directory
// only when the layer has an entry for it (many layers list files alone):
// the files under each skipped directory are skipped by pattern too.
func (o *options) walkerOption() walker.Option {
	files := slices.Clone(o.skipFiles)
	for _, d := range o.skipDirs {
		files = append(files, strings.TrimRight(d, "/")+"/**")
	}
	return walker.Option{SkipFiles: files, SkipDirs: slices.Clone(o.skipDirs)}
}

func (o *options) has(s Scanner) bool {
	for _, x := range o.scanners {
		if x == s {
			return true
		}
	}
	return false
}

// scanOptions are the options `trivy image` passes to the scan service by
// default. PkgRelationships must list every relationship: left empty, every
// package is filtered out and the scan silently reports nothing.
func (o *options) scanOptions() types.ScanOptions {
	var scanners types.Scanners
	if o.has(ScannerVuln) {
		scanners = append(scanners, types.VulnerabilityScanner)
	}
	if o.has(ScannerSecret) {
		scanners = append(scanners, types.SecretScanner)
	}
	return types.ScanOptions{
		PkgTypes:            []string{types.PkgTypeOS, types.PkgTypeLibrary},
		PkgRelationships:    ftypes.Relationships,
		Scanners:            scanners,
		VulnSeveritySources: []dbtypes.SourceID{"auto"},
	}
}

// disabledAnalyzers mirrors disabledAnalyzers of Trivy's pkg/commands/artifact
// for `trivy image` with ship's defaults, with one deliberate difference: the
// lock file analyzers stay on (see the package documentation).
func (o *options) disabledAnalyzers() []analyzer.Type {
	d := []analyzer.Type{
		analyzer.TypeApkCommand,        // removed-package recovery from history: off by default in Trivy
		analyzer.TypeLicenseFile,       // license files: expensive, only for --license-full
		analyzer.TypeHistoryDockerfile, // misconfigurations of the image config: not a scanner here
		analyzer.TypeExecutable,        // executables: SBOM lookups in Rekor over the network
		analyzer.TypeRpmArchive,        // rpm files lying around: experimental in Trivy
	}
	d = append(d, analyzer.TypeConfigFiles...) // IaC config files: misconfig is not a scanner here
	if !o.has(ScannerSecret) {
		d = append(d, analyzer.TypeSecret)
	}
	if !o.has(ScannerVuln) {
		// Without the vulnerability DB there is no Java DB either.
		d = append(d, analyzer.TypeJar)
	}
	return d
}

// javaDBRefs parses the Java DB repositories, skipping (and logging) any
// that do not parse: the Java DB is only needed for jar files.
func (o *options) javaDBRefs() []name.Reference {
	var refs []name.Reference
	for _, r := range o.javaDBRepos {
		var nameOpts []name.Option
		if o.insecure {
			nameOpts = append(nameOpts, name.Insecure)
		}
		ref, err := name.ParseReference(r, nameOpts...)
		if err != nil {
			o.logger.Warn("ignoring Java DB repository", slog.String("repository", r), slog.String("error", err.Error()))
			continue
		}
		refs = append(refs, ref)
	}
	return refs
}

// oneLineErr keeps the chain of err but flattens its message.
func oneLineErr(err error) error {
	return flatError{err}
}

type flatError struct{ err error }

func (e flatError) Error() string { return oneLine(e.err) }
func (e flatError) Unwrap() error { return e.err }

// filter runs Trivy's result filter as the CLI always does: it removes
// duplicate vulnerabilities, then applies the ignore files (one pass each)
// and the VEX documents. Every severity and status is kept: what is reported
// is findings.Policy's business.
func (o *options) filter(ctx context.Context, report types.Report) error {
	for _, f := range append(o.ignoreFiles, o.vexFiles...) {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("reading %s: %w", f, err)
		}
	}
	var vexSources []vex.Source
	for _, f := range o.vexFiles {
		vexSources = append(vexSources, vex.Source{Type: vex.TypeFile, FilePath: f})
	}
	ignores := o.ignoreFiles
	if len(ignores) == 0 {
		ignores = []string{""}
	}
	for i, ignore := range ignores {
		opts := result.FilterOptions{Severities: allSeverities(), IgnoreFile: ignore, CacheDir: o.cacheDir}
		if i == len(ignores)-1 {
			opts.VEXSources = vexSources
		}
		if err := result.Filter(ctx, report, opts); err != nil {
			return fmt.Errorf("filtering findings: %w", oneLineErr(err))
		}
	}
	return nil
}

func allSeverities() []dbtypes.Severity {
	out := make([]dbtypes.Severity, 0, len(dbtypes.SeverityNames))
	for i := range dbtypes.SeverityNames {
		out = append(out, dbtypes.Severity(i))
	}
	return out
}

// RemoveTempDir removes the temporary directory Trivy keeps for the whole
// process (TMPDIR/trivy-*, created on first use for the files a scan
// spills). Call it once the process scans no more: before it exits.
func RemoveTempDir() error {
	return xos.Cleanup()
}
