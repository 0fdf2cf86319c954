package action

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/scan"
)

// DefaultFindingsJSON is where the findings document goes by default,
// relative to the working directory.
const DefaultFindingsJSON = "ship-findings.json"

// scanInputs describes the inputs of the scan (issue 4).
func scanInputs() []Input {
	return []Input{
		{
			Name: "scan", Kind: KindBool, Default: "true",
			Description: "Scan the image with Trivy (in process) after the build.",
			field:       func(c *Config) any { return &c.Scan },
		},
		{
			Name: "scanners", Kind: KindList, Alias: "scanner", Default: "vuln,secret",
			Description: "What the scan looks for: vuln, secret, misconfig (the Dockerfile), comma separated.",
			field:       func(c *Config) any { return &c.Scanners },
			validate: func(c *Config) error {
				_, err := scan.ParseScanners(strings.Join(c.Scanners, ","))
				return err
			},
		},
		{
			Name: "severity", Kind: KindList, Alias: "severities",
			Description: "Severities reported (UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL), comma separated (default: all).",
			field:       func(c *Config) any { return &c.Severity },
			validate: func(c *Config) error {
				_, err := findings.ParseSeverities(strings.Join(c.Severity, ","))
				return err
			},
		},
		{
			Name: "fail-on", Kind: KindList, Alias: "fail-on-severity",
			Description: "Severities that fail the run with exit code 1, e.g. CRITICAL,HIGH (default: none, report only).",
			field:       func(c *Config) any { return &c.FailOn },
			validate: func(c *Config) error {
				_, err := findings.ParseSeverities(strings.Join(c.FailOn, ","))
				return err
			},
		},
		{
			Name: "ignore-unfixed", Kind: KindBool, Default: "false",
			Description: "Leave out vulnerabilities that have no fixed version.",
			field:       func(c *Config) any { return &c.IgnoreUnfixed },
		},
		{
			Name: "ignore-base", Kind: KindBool, Default: "false",
			Description: "Report findings of the base image but do not fail the run on them.",
			field:       func(c *Config) any { return &c.IgnoreBase },
		},
		{
			Name: "trivyignores", Kind: KindList, Alias: "trivyignore",
			Description: "Trivy ignore files (.trivyignore, .trivyignore.yaml) (default: those in the context, if any).",
			field:       func(c *Config) any { return &c.TrivyIgnores },
			check:       func(c *Config) error { return filesExist("trivyignores", c.TrivyIgnores) },
		},
		{
			Name: "vex", Kind: KindList, Alias: "vex-file",
			Description: "VEX documents (OpenVEX, CycloneDX, CSAF): vulnerabilities they mark not affecting are left out.",
			field:       func(c *Config) any { return &c.VEX },
			check:       func(c *Config) error { return filesExist("vex", c.VEX) },
		},
		{
			Name: "skip-files", Kind: KindList, Alias: "skip-file",
			Description: "Files left out of the scan: globs matched against paths in the image, e.g. /app/testdata/*.pem or **/*.key (as trivy --skip-files).",
			field:       func(c *Config) any { return &c.SkipFiles },
			validate:    func(c *Config) error { return pathPatterns("skip-files", c.SkipFiles) },
		},
		{
			Name: "skip-dirs", Kind: KindList, Alias: "skip-dir",
			Description: "Directories left out of the scan, with everything under them: globs, e.g. /var/lib/apt/lists or **/node_modules (as trivy --skip-dirs).",
			field:       func(c *Config) any { return &c.SkipDirs },
			validate:    func(c *Config) error { return pathPatterns("skip-dirs", c.SkipDirs) },
		},
		{
			Name: "db-repository", Kind: KindList, Alias: "db-repositories", Default: strings.Join(scan.DefaultDBRepositories(), ","),
			Description: "OCI repositories of the vulnerability DB, tried in order.",
			field:       func(c *Config) any { return &c.DBRepository },
			validate: func(c *Config) error {
				for _, r := range c.DBRepository {
					if _, err := name.ParseReference(r); err != nil {
						return fmt.Errorf("db-repository %q: not an image reference", r)
					}
				}
				return nil
			},
		},
		{
			Name: "skip-db-update", Kind: KindBool, Default: "false",
			Description: "Use the vulnerability DB in <cache-dir>/db as it is, without downloading (offline use).",
			field:       func(c *Config) any { return &c.SkipDBUpdate },
		},
		{
			Name: "trivy-server", Kind: KindString,
			Description: "URL of a Trivy server to scan through (client/server mode): it holds the DB and the layer cache.",
			field:       func(c *Config) any { return &c.TrivyServer },
			validate: func(c *Config) error {
				if c.TrivyServer == "" {
					if c.TrivyServerToken != "" {
						return errors.New("trivy-server-token needs trivy-server")
					}
					return nil
				}
				u, err := url.Parse(c.TrivyServer)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return fmt.Errorf("trivy-server %q: want an http(s) URL", c.TrivyServer)
				}
				return nil
			},
		},
		{
			Name: "trivy-server-token", Kind: KindString, Secret: true,
			Description: "Token of the Trivy server (sent as the Trivy-Token header).",
			field:       func(c *Config) any { return &c.TrivyServerToken },
		},
		{
			Name: "findings-json", Kind: KindString, Default: DefaultFindingsJSON,
			Description: "Path of the findings document (ship's JSON format, see README).",
			field:       func(c *Config) any { return &c.FindingsJSON },
		},
		{
			Name: "sbom", Kind: KindString,
			Description: "Also write an SBOM of the image: cyclonedx or spdx (default: none).",
			field:       func(c *Config) any { return &c.SBOM },
			validate: func(c *Config) error {
				if c.SBOM == "" {
					if c.SBOMFile != "" {
						return errors.New("sbom-file needs sbom (cyclonedx or spdx)")
					}
					return nil
				}
				_, err := scan.ParseSBOMFormat(c.SBOM)
				return err
			},
		},
		{
			Name: "sbom-file", Kind: KindString,
			Description: "Path of the SBOM (default: ship-sbom.cdx.json or ship-sbom.spdx.json).",
			field:       func(c *Config) any { return &c.SBOMFile },
		},
		{
			Name: "scan-before-push", Kind: KindBool, Default: "false",
			Description: "Scan before pushing, and push nothing when fail-on fails the run (default: scan while pushing).",
			field:       func(c *Config) any { return &c.ScanBeforePush },
			validate: func(c *Config) error {
				if c.ScanBeforePush && !c.Scan {
					return errors.New("scan-before-push needs scan")
				}
				return nil
			},
		},
		{
			Name: "fail-on-new-only", Kind: KindBool, Default: "false",
			Description: "Fail only on findings that are new against compare-to (without compare-to every finding is new).",
			field:       func(c *Config) any { return &c.FailOnNewOnly },
		},
		{
			Name: "compare-to", Kind: KindString,
			Description: "Image to compare the findings to: each is marked new, fixed or unchanged " +
				"(default on a pull or merge request: the first tag's repository tagged with the target branch, when it exists).",
			field: func(c *Config) any { return &c.CompareTo },
			validate: func(c *Config) error {
				if c.CompareTo == "" {
					return nil
				}
				if _, err := name.ParseReference(c.CompareTo); err != nil {
					return fmt.Errorf("compare-to %q: not an image reference", c.CompareTo)
				}
				return nil
			},
		},
	}
}

// pathPatterns checks the globs of a skip-files or skip-dirs input.
func pathPatterns(input string, patterns []string) error {
	if err := scan.CheckPathPatterns(patterns); err != nil {
		return fmt.Errorf("%s: %w", input, err)
	}
	return nil
}

// filesExist checks that every path of an input names a regular file.
func filesExist(input string, paths []string) error {
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %s does not exist", input, p)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", input, err)
		}
		if fi.IsDir() {
			return fmt.Errorf("%s: %s is a directory", input, p)
		}
	}
	return nil
}

// sbomFile returns where the SBOM goes, "" when none is asked.
func (c Config) sbomFile() string {
	if c.SBOM == "" {
		return ""
	}
	if c.SBOMFile != "" {
		return c.SBOMFile
	}
	if f, _ := scan.ParseSBOMFormat(c.SBOM); f == scan.SBOMSPDX {
		return "ship-sbom.spdx.json"
	}
	return "ship-sbom.cdx.json"
}

// ignoreFiles returns the Trivy ignore files to apply: the trivyignores
// input, else .trivyignore and .trivyignore.yaml of the build context when
// they exist.
func (c Config) ignoreFiles() []string {
	if len(c.TrivyIgnores) > 0 {
		return c.TrivyIgnores
	}
	if c.ScanImage != "" {
		return nil
	}
	var out []string
	for _, n := range []string{".trivyignore", ".trivyignore.yaml"} {
		p := filepath.Join(c.Context, n)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	return out
}

// scanCacheDir returns the directory of the vulnerability DB and the layer
// analysis cache: cache-dir when set, else $XDG_CACHE_HOME/ship, else
// $HOME/.cache/ship (on GitHub, a container action's HOME is /github/home,
// kept for the job; set cache-dir under the workspace to persist it with
// actions/cache).
func scanCacheDir(c Config, lookup LookupEnv) (string, error) {
	if c.CacheDir != "" {
		return c.CacheDir, nil
	}
	if v, _ := lookup("XDG_CACHE_HOME"); v != "" && filepath.IsAbs(v) {
		return filepath.Join(v, "ship"), nil
	}
	if v, _ := lookup("HOME"); v != "" {
		return filepath.Join(v, ".cache", "ship"), nil
	}
	return "", errors.New("finding a cache directory for the scan: neither HOME nor XDG_CACHE_HOME is set (set cache-dir)")
}

// policy returns the findings policy of c (inputs already validated).
func (c Config) policy() findings.Policy {
	sev, _ := findings.ParseSeverities(strings.Join(c.Severity, ","))
	fail, _ := findings.ParseSeverities(strings.Join(c.FailOn, ","))
	return findings.Policy{
		Severity:      sev,
		FailOn:        fail,
		IgnoreUnfixed: c.IgnoreUnfixed,
		IgnoreBase:    c.IgnoreBase,
		NewOnly:       c.FailOnNewOnly,
	}
}
