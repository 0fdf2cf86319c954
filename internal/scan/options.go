package scan

import (
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	trivydb "github.com/aquasecurity/trivy/pkg/db"
	"github.com/aquasecurity/trivy/pkg/javadb"

	"github.com/intesys/ship-action/internal/findings"
)

// Scanner names one kind of check Trivy runs.
type Scanner string

// The scanners Scan supports.
const (
	// ScannerVuln finds vulnerable OS and language packages.
	ScannerVuln Scanner = "vuln"
	// ScannerSecret finds secrets with Trivy's built-in rules.
	ScannerSecret Scanner = "secret"
	// ScannerMisconfig checks the Dockerfile: see ScanDockerfile. Scan
	// accepts it and leaves it to ScanDockerfile (the Dockerfile is not in
	// the image; IaC files inside images are not checked).
	ScannerMisconfig Scanner = "misconfig"
)

// DefaultScanners returns what Scan runs without WithScanners:
// vulnerabilities and secrets.
func DefaultScanners() []Scanner { return []Scanner{ScannerVuln, ScannerSecret} }

// DefaultDBRepositories returns the repositories of Trivy's vulnerability DB
// tried in order without WithDBRepositories: the list Trivy itself uses.
func DefaultDBRepositories() []string {
	return []string{trivydb.DefaultGCRRepository, trivydb.DefaultGHCRRepository}
}

// DefaultJavaDBRepositories returns the repositories of Trivy's Java DB (used
// only when the image holds jar files), in Trivy's order.
func DefaultJavaDBRepositories() []string {
	return []string{javadb.DefaultGCRRepository, javadb.DefaultGHCRRepository}
}

// Option configures Scan.
type Option func(*options) error

type options struct {
	scanners       []Scanner
	cacheDir       string
	dbRepositories []string
	javaDBRepos    []string
	skipDBUpdate   bool
	db             *DBOutcome // see WithDBOutcome
	origins        []findings.LayerOrigin
	source         fs.FS
	logger         *slog.Logger
	imageName      string
	insecure       bool
	ignoreFiles    []string
	vexFiles       []string
	skipFiles      []string
	skipDirs       []string
	serverURL      string
	serverHeaders  http.Header
}

// defaults: scanners vuln and secret; cache dir Trivy's default
// ($XDG_CACHE_HOME/trivy or ~/.cache/trivy, so an existing Trivy cache is
// reused); Trivy's DB repositories; a logger that discards.
func newOptions(opts []Option) (*options, error) {
	o := &options{
		scanners:       DefaultScanners(),
		dbRepositories: DefaultDBRepositories(),
		javaDBRepos:    DefaultJavaDBRepositories(),
		logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if o.cacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("finding the cache directory: %w (use WithCacheDir)", err)
		}
		o.cacheDir = filepath.Join(dir, "trivy")
	}
	return o, nil
}

// WithScanners sets the scanners to run (default DefaultScanners). An empty
// list or an unknown scanner is an error.
func WithScanners(s ...Scanner) Option {
	return func(o *options) error {
		if len(s) == 0 {
			return fmt.Errorf("setting scanners: the list is empty")
		}
		for _, sc := range s {
			if sc != ScannerVuln && sc != ScannerSecret && sc != ScannerMisconfig {
				return fmt.Errorf("setting scanners: unknown scanner %q (want vuln, secret, misconfig)", sc)
			}
		}
		o.scanners = slices.Clone(s)
		return nil
	}
}

// WithCacheDir sets Trivy's cache directory: the vulnerability DB lives in
// DIR/db (trivy.db and metadata.json, as Trivy lays it out), the Java DB in
// DIR/java-db and the layer analysis cache in DIR/fanal, so an existing
// Trivy cache works as is and layers are analysed once across runs.
func WithCacheDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return fmt.Errorf("setting cache dir: empty path")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("setting cache dir %s: %w", dir, err)
		}
		o.cacheDir = abs
		return nil
	}
}

// WithDBRepositories sets the OCI repositories of the vulnerability DB, tried
// in order (default DefaultDBRepositories).
func WithDBRepositories(repos ...string) Option {
	return func(o *options) error {
		var out []string
		for _, r := range repos {
			if r = strings.TrimSpace(r); r != "" {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			return fmt.Errorf("setting DB repositories: the list is empty")
		}
		o.dbRepositories = out
		return nil
	}
}

// WithJavaDBRepositories sets the OCI repositories of Trivy's Java DB, tried
// in order (default DefaultJavaDBRepositories).
func WithJavaDBRepositories(repos ...string) Option {
	return func(o *options) error {
		if len(repos) == 0 {
			return fmt.Errorf("setting Java DB repositories: the list is empty")
		}
		o.javaDBRepos = slices.Clone(repos)
		return nil
	}
}

// WithSkipDBUpdate uses the DB in the cache dir as it is, without checking
// for a newer one (offline use). Without a DB in the cache dir, Scan fails.
func WithSkipDBUpdate(skip bool) Option {
	return func(o *options) error {
		o.skipDBUpdate = skip
		return nil
	}
}

// WithDBOutcome makes Scan take d, what PrepareDB did earlier in the run
// with the same options, instead of preparing the DB itself: it fails with
// d's error, or uses the DB d left in the cache dir (warning again when it
// is an older one because the download failed). Nil changes nothing.
func WithDBOutcome(d *DBOutcome) Option {
	return func(o *options) error {
		o.db = d
		return nil
	}
}

// WithOrigins describes the layers of the image, in image order, so that
// findings point at the Dockerfile line or source file that caused them (see
// findings.Attribution). Without origins every finding is marked base.
func WithOrigins(origins []findings.LayerOrigin) Option {
	return func(o *options) error {
		o.origins = slices.Clone(origins)
		return nil
	}
}

// WithSource gives the build context, where the line of a package in a lock
// file copied from the context is looked up.
func WithSource(fsys fs.FS) Option {
	return func(o *options) error {
		o.source = fsys
		return nil
	}
}

// WithLogger sends ship's and Trivy's log records to l; Trivy's Info records
// become Debug records, its warnings and errors stay what they are. Default:
// discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("setting logger: nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithImageName names the scanned image in Trivy's report (its target), e.g.
// "ghcr.io/o/app:1". Default: the image's config digest.
func WithImageName(name string) Option {
	return func(o *options) error {
		o.imageName = name
		return nil
	}
}

// WithInsecureRegistry lets the DB downloads use plain HTTP or unverified
// TLS (a mirror on a private network, tests).
func WithInsecureRegistry(insecure bool) Option {
	return func(o *options) error {
		o.insecure = insecure
		return nil
	}
}

// WithIgnoreFiles applies Trivy ignore files: .trivyignore (one ID per line,
// optionally "exp:YYYY-MM-DD") or .trivyignore.yaml (IDs with paths, packages
// and expiry), in Trivy's own formats. A file that does not exist is an
// error: an ignore file the user named must not be skipped silently.
func WithIgnoreFiles(paths ...string) Option {
	return func(o *options) error {
		o.ignoreFiles = append(o.ignoreFiles, paths...)
		return nil
	}
}

// WithVEX applies VEX documents (OpenVEX, CycloneDX VEX, CSAF, as Trivy reads
// them): vulnerabilities a document says do not affect the image are dropped.
// A file that does not exist is an error.
func WithVEX(paths ...string) Option {
	return func(o *options) error {
		o.vexFiles = append(o.vexFiles, paths...)
		return nil
	}
}

// WithSkipFiles leaves the files that match patterns out of the analysis,
// as Trivy's --skip-files: globs with "**" (doublestar), matched against
// the path in the image with or without its leading "/", e.g.
// "/app/testdata/*.pem" or "**/*.key". An invalid pattern is an error (see
// CheckPathPatterns).
func WithSkipFiles(patterns ...string) Option {
	return withSkip("files", patterns, func(o *options) *[]string { return &o.skipFiles })
}

// WithSkipDirs leaves the directories that match patterns, and everything
// under them, out of the analysis, as Trivy's --skip-dirs (patterns as for
// WithSkipFiles), e.g. "/var/lib/apt/lists" or "**/node_modules".
func WithSkipDirs(patterns ...string) Option {
	return withSkip("directories", patterns, func(o *options) *[]string { return &o.skipDirs })
}

// withSkip adds patterns to the list list returns, what naming them in
// the error.
func withSkip(what string, patterns []string, list func(*options) *[]string) Option {
	return func(o *options) error {
		if err := CheckPathPatterns(patterns); err != nil {
			return fmt.Errorf("setting %s to skip: %w", what, err)
		}
		l := list(o)
		*l = append(*l, patterns...)
		return nil
	}
}

// CheckPathPatterns returns an error naming the first of patterns that is
// not a valid glob (Trivy would silently match nothing with it).
func CheckPathPatterns(patterns []string) error {
	for _, p := range patterns {
		clean := strings.TrimLeft(path.Clean(filepath.ToSlash(p)), "/")
		if strings.TrimSpace(p) == "" || clean == "" || clean == "." || !doublestar.ValidatePattern(clean) {
			return fmt.Errorf("%q is not a valid path pattern (a glob such as /app/testdata or **/*.pem)", p)
		}
	}
	return nil
}

// WithServer scans through a Trivy server (`trivy server`) at url, with
// Trivy's own RPC client: the server holds the vulnerability DB and the
// layer cache, so many runners share one of each and none downloads the DB.
// Layers the server has not seen are analysed here (secrets too) and sent to
// it. headers go with every request, e.g. the token header
// ("Trivy-Token: ...") the server was started with.
func WithServer(rawURL string, headers http.Header) Option {
	return func(o *options) error {
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("setting Trivy server: %q is not an http(s) URL", rawURL)
		}
		o.serverURL = strings.TrimRight(rawURL, "/")
		o.serverHeaders = headers.Clone()
		return nil
	}
}

// ParseScanners parses the scanners input: a comma or newline separated list
// of "vuln", "secret" and "misconfig", case-insensitive, duplicates removed.
func ParseScanners(s string) ([]Scanner, error) {
	var out []Scanner
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		sc := Scanner(strings.ToLower(strings.TrimSpace(f)))
		switch sc {
		case "":
			continue
		case ScannerVuln, ScannerSecret, ScannerMisconfig:
			if !slices.Contains(out, sc) {
				out = append(out, sc)
			}
		default:
			return nil, fmt.Errorf("parsing scanners: unknown scanner %q (want vuln, secret, misconfig)", sc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("parsing scanners: no scanner in %q", s)
	}
	return out, nil
}
