package action

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Config is every setting of a ship run. Load fills it from flags, GitHub
// inputs, SHIP_* variables and defaults; Inputs describes each field.
type Config struct {
	Context            string            // build context directory
	File               string            // Dockerfile path; Load resolves the default <Context>/Dockerfile
	Tags               []string          // image references to tag (and push)
	BuildArgs          map[string]string // --build-arg values, bare keys resolved from the environment
	Secrets            []string          // --secret items (id=ID,src=FILE or id=ID,env=VAR), never the values
	SSH                []string          // --ssh items: default, ID, ID=SOCKET or ID=KEYFILE
	Target             string            // stage to build
	Labels             map[string]string // labels added to the image
	Platforms          []string          // target platforms, e.g. linux/amd64; several: an index
	Attest             []string          // documents attached to pushed images: provenance, sbom, or none
	CacheMaxSize       string            // size limit of the build caches in CacheDir: 5GB, 500MB, unlimited
	Push               bool              // push the image to every tag
	RegistryUsername   string            // user for the registries of Tags
	RegistryPassword   string            // password or token for the registries of Tags (secret)
	InsecureRegistries []string          // HOST[:PORT] reached over plain HTTP or unverified TLS
	RegistryMirror     string            // mirror for docker.io base images
	Output             string            // OCI image layout directory
	OutputTar          string            // docker-loadable tarball path, empty: none
	CacheDir           string            // layer cache directory, empty: a temporary one
	NoCache            bool              // run every RUN again (the layer cache is still written)
	NoCacheFilter      []string          // stages whose RUNs run again
	CacheRepo          string            // repository of the layer cache in a registry
	CacheReadOnly      bool              // only read CacheRepo
	GitHubToken        string            // token for ghcr.io (secret)
	GitLabToken        string            // token for the GitLab merge request note (secret)

	Scan             bool     // scan the image after the build
	Scanners         []string // vuln, secret, misconfig
	Severity         []string // severities reported; empty: all
	FailOn           []string // severities that fail the run; empty: report only
	IgnoreUnfixed    bool     // drop vulnerabilities without a fixed version
	IgnoreBase       bool     // report but do not fail on base-image findings
	TrivyIgnores     []string // .trivyignore / .trivyignore.yaml files; empty: those of the context, if any
	VEX              []string // VEX documents
	SkipFiles        []string // globs of files left out of the scan
	SkipDirs         []string // globs of directories left out of the scan
	DBRepository     []string // vulnerability DB repositories, tried in order
	SkipDBUpdate     bool     // use the DB in the cache as it is
	TrivyServer      string   // Trivy server URL (client/server mode)
	TrivyServerToken string   // Trivy server token (secret)
	FindingsJSON     string   // path of the findings document
	SBOM             string   // SBOM format: cyclonedx, spdx or empty
	SBOMFile         string   // SBOM path; empty: ship-sbom.<format>.json
	ScanBeforePush   bool     // scan before pushing; a failed gate pushes nothing
	FailOnNewOnly    bool     // gate only on findings new against CompareTo
	CompareTo        string   // image the findings are compared to

	CheckName         string // GitHub check run name; empty: "ship / <image>"
	Comment           string // pull request comment: true, false or on-failure
	SARIFFile         string // SARIF path
	UploadSARIF       bool   // upload the SARIF to GitHub code scanning
	MaxAnnotations    int    // check run annotations at most
	FailOnReportError bool   // a report that cannot be delivered fails the run

	// ScanImage is the image `ship scan IMAGE` scans (LoadScan); empty for
	// a build.
	ScanImage string
	// MergeImages are the per-platform images `ship merge` puts in one
	// index (LoadMerge); empty for a build.
	MergeImages []string

	// SourceDateEpoch comes from the SOURCE_DATE_EPOCH variable (integer
	// seconds); nil when unset.
	SourceDateEpoch *time.Time
	// Help asks Run to print the usage and do nothing else.
	Help bool

	// workspace is the repository's root (GITHUB_WORKSPACE,
	// CI_PROJECT_DIR): findings name files relative to it. "" is the
	// working directory.
	workspace string
}

// Kind is the type of an input's value.
type Kind int

const (
	// KindString is a plain string.
	KindString Kind = iota
	// KindBool is "true" or "false" (flags: --name alone means true).
	KindBool
	// KindList is a list: newline or comma separated in inputs and
	// variables, and repeatable flags.
	KindList
	// KindMap is a list of KEY=VALUE items: newline separated in inputs and
	// variables, and repeatable flags.
	KindMap
	// KindLines is a list whose items may hold commas: newline separated in
	// inputs and variables, and repeatable flags.
	KindLines
	// KindInt is a non-negative decimal integer.
	KindInt
)

// String returns the name action.yml documentation uses for the kind.
func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindBool:
		return "bool"
	case KindList:
		return "list"
	case KindMap:
		return "map"
	case KindLines:
		return "lines"
	case KindInt:
		return "int"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Input describes one setting: its action input name (also the flag --Name
// and the variable SHIP_NAME), kind, default and validation.
type Input struct {
	Name        string // kebab-case action input name
	Kind        Kind
	Default     string // the default, as written in action.yml
	Description string
	// ActionDefault, when set, is the default action.yml declares instead
	// of Default (an expression GitHub evaluates, e.g. "${{ github.token }}").
	ActionDefault string
	Alias         string // extra flag name, the singular docker build name ("tag")
	Short         string // one-letter flag ("t")
	Secret        bool   // never logged; masked on GitHub

	field    func(*Config) any     // pointer to the Config field
	bareEnv  bool                  // KindMap: a bare KEY takes the environment's value
	validate func(c *Config) error // after all inputs are read
	check    func(c *Config) error // reads the filesystem
}

// EnvName returns the SHIP_* variable that sets the input.
func (in Input) EnvName() string {
	return "SHIP_" + strings.ToUpper(strings.ReplaceAll(in.Name, "-", "_"))
}

// LookupEnv looks up an environment variable, like os.LookupEnv.
type LookupEnv func(key string) (string, bool)

// Inputs returns the description of every input, in the order action.yml
// and --help list them.
func Inputs() []Input {
	return append([]Input{
		{
			Name: "context", Kind: KindString, Default: ".",
			Description: "Build context directory.",
			field:       func(c *Config) any { return &c.Context },
			validate: func(c *Config) error {
				if c.Context == "" {
					return fmt.Errorf("context must not be empty")
				}
				return nil
			},
			check: func(c *Config) error {
				fi, err := os.Stat(c.Context)
				if err != nil {
					return fmt.Errorf("context directory %s does not exist", c.Context)
				}
				if !fi.IsDir() {
					return fmt.Errorf("context %s is not a directory", c.Context)
				}
				return nil
			},
		},
		{
			Name: "file", Kind: KindString, Short: "f",
			Description: "Path of the Dockerfile (default: <context>/Dockerfile).",
			field:       func(c *Config) any { return &c.File },
			check: func(c *Config) error {
				fi, err := os.Stat(c.File)
				if err != nil {
					return fmt.Errorf("dockerfile %s does not exist", c.File)
				}
				if fi.IsDir() {
					return fmt.Errorf("dockerfile %s is a directory", c.File)
				}
				return nil
			},
		},
		{
			Name: "tags", Kind: KindList, Alias: "tag", Short: "t",
			Description: "Image references to tag the image with, newline or comma separated.",
			field:       func(c *Config) any { return &c.Tags },
			validate: func(c *Config) error {
				for _, t := range c.Tags {
					if _, err := parseTag(t); err != nil {
						return err
					}
				}
				return nil
			},
		},
		{
			Name: "build-args", Kind: KindMap, Alias: "build-arg", bareEnv: true,
			Description: "Build arguments, KEY=VALUE, newline separated; a bare KEY takes the value of the environment variable KEY.",
			field:       func(c *Config) any { return &c.BuildArgs },
		},
		{
			Name: "secrets", Kind: KindLines, Alias: "secret",
			Description: "Secrets for RUN --mount=type=secret, one per line, as docker build --secret: id=ID,src=FILE or id=ID,env=VAR. " +
				"Values are masked in logs and never stored in the image.",
			field: func(c *Config) any { return &c.Secrets },
			validate: func(c *Config) error {
				_, err := parseSecretSpecs(c.Secrets)
				return err
			},
		},
		{
			Name: "ssh-agents", Kind: KindLines, Alias: "ssh",
			Description: "SSH agents for RUN --mount=type=ssh, one per line, as docker build --ssh: default (the agent of SSH_AUTH_SOCK), ID, " +
				"ID=SOCKET (an agent socket) or ID=KEYFILE (an unencrypted private key ship serves from an agent of its own). RUN can use the keys, never read them.",
			field: func(c *Config) any { return &c.SSH },
		},
		{
			Name: "target", Kind: KindString,
			Description: "Stage to build (default: the last stage).",
			field:       func(c *Config) any { return &c.Target },
		},
		{
			Name: "labels", Kind: KindMap, Alias: "label",
			Description: "Labels to add to the image, KEY=VALUE, newline separated.",
			field:       func(c *Config) any { return &c.Labels },
		},
		{
			Name: "platforms", Kind: KindList, Alias: "platform",
			Description: "Target platforms, e.g. linux/amd64,linux/arm64 (default: the machine's). Several platforms give an OCI index of one image per platform.",
			field:       func(c *Config) any { return &c.Platforms },
			validate: func(c *Config) error {
				seen := map[string]bool{}
				for _, p := range c.Platforms {
					pl, err := parsePlatform(p)
					if err != nil {
						return err
					}
					if seen[platformName(pl)] {
						return fmt.Errorf("platform %s is listed twice", p)
					}
					seen[platformName(pl)] = true
				}
				if len(c.Platforms) > 1 && c.OutputTar != "" {
					return fmt.Errorf("output-tar holds one image and %d platforms are built: use output (an OCI layout holds the index)", len(c.Platforms))
				}
				if len(c.Platforms) > 1 && c.ScanImage != "" {
					return fmt.Errorf("ship scan scans one platform: give one --platform")
				}
				return nil
			},
		},
		{
			Name: "attestations", Kind: KindList, Alias: "attest", Default: "provenance,sbom",
			Description: "Documents attached to each pushed image as OCI referrers: provenance (SLSA v1), sbom (the scan's SBOM, when sbom is set), or none.",
			field:       func(c *Config) any { return &c.Attest },
			validate: func(c *Config) error {
				for _, a := range c.Attest {
					switch a {
					case attestProvenance, attestSBOM:
					case attestNone:
						if len(c.Attest) > 1 {
							return fmt.Errorf("attestations: none cannot be combined with %s", strings.Join(slices.DeleteFunc(slices.Clone(c.Attest), func(s string) bool { return s == attestNone }), ","))
						}
					default:
						return fmt.Errorf("invalid attestations value %q: want provenance, sbom or none", a)
					}
				}
				return nil
			},
		},
		{
			Name: "push", Kind: KindBool, Default: "false",
			Description: "Push the image to every tag.",
			field:       func(c *Config) any { return &c.Push },
			validate: func(c *Config) error {
				if c.Push && len(c.Tags) == 0 {
					return fmt.Errorf("push needs at least one tag (--tag)")
				}
				return nil
			},
		},
		{
			Name: "registry-username", Kind: KindString,
			Description: "User name for the registries of the tags.",
			field:       func(c *Config) any { return &c.RegistryUsername },
			validate: func(c *Config) error {
				if (c.RegistryUsername == "") != (c.RegistryPassword == "") {
					return fmt.Errorf("registry-username and registry-password must be set together")
				}
				return nil
			},
		},
		{
			Name: "registry-password", Kind: KindString, Secret: true,
			Description: "Password or token for the registries of the tags.",
			field:       func(c *Config) any { return &c.RegistryPassword },
		},
		{
			Name: "insecure-registries", Kind: KindList, Alias: "insecure-registry",
			Description: "Registries (HOST[:PORT]) reached over plain HTTP or with unverified TLS, newline or comma separated.",
			field:       func(c *Config) any { return &c.InsecureRegistries },
			validate: func(c *Config) error {
				for _, h := range c.InsecureRegistries {
					if _, err := name.NewRegistry(h); err != nil || strings.Contains(h, "/") {
						return fmt.Errorf("insecure registry %q: want HOST[:PORT]", h)
					}
				}
				return nil
			},
		},
		{
			Name: "registry-mirror", Kind: KindString,
			Description: "Registry mirror ([http[s]://]HOST[:PORT]) tried first for docker.io base images; http:// also marks it insecure.",
			field:       func(c *Config) any { return &c.RegistryMirror },
			validate: func(c *Config) error {
				if c.RegistryMirror == "" {
					return nil
				}
				host := strings.TrimPrefix(strings.TrimPrefix(c.RegistryMirror, "https://"), "http://")
				if _, err := name.NewRegistry(host); err != nil || strings.Contains(host, "/") {
					return fmt.Errorf("registry mirror %q: want [http[s]://]HOST[:PORT]", c.RegistryMirror)
				}
				return nil
			},
		},
		{
			Name: "output", Kind: KindString, Default: "",
			Description: "Directory for the OCI image layout of the built image (replaced on each run). " +
				"Default: ./ship-out when not pushing; when pushing, none unless set (a layout holds the base image's layers, which a push never downloads).",
			field: func(c *Config) any { return &c.Output },
		},
		{
			Name: "output-tar", Kind: KindString,
			Description: "Also write the image as a tarball that docker load accepts.",
			field:       func(c *Config) any { return &c.OutputTar },
		},
		{
			Name: "cache-dir", Kind: KindString,
			Description: "Directory for the layer cache (the layers RUN made, reused when nothing they depend on changed: <cache-dir>/layers), the vulnerability DB (<cache-dir>/db) and the scan cache " +
				"(default: build cache in a temporary directory removed after the run, no layer cache; DB and scan cache in $XDG_CACHE_HOME/ship or ~/.cache/ship).",
			field: func(c *Config) any { return &c.CacheDir },
		},
		{
			Name: "cache-max-size", Kind: KindString, Default: "5GB",
			Description: "Size limit of the build caches in cache-dir (extracted base images and RUN layers), e.g. 5GB, 500MB, or unlimited: after a run the least recently used entries beyond it are removed (those the run used are kept; the DB and the scan cache are not counted).",
			field:       func(c *Config) any { return &c.CacheMaxSize },
			validate: func(c *Config) error {
				if _, err := parseSize(c.CacheMaxSize); err != nil {
					return fmt.Errorf("cache-max-size: %w", err)
				}
				return nil
			},
		},
		{
			Name: "no-cache", Kind: KindBool, Default: "false",
			Description: "Run every RUN again instead of reusing layers from the layer cache (the cache is still updated).",
			field:       func(c *Config) any { return &c.NoCache },
		},
		{
			Name: "github-token", Kind: KindString, Secret: true,
			ActionDefault: "${{ github.token }}",
			Description:   "GitHub token: for ghcr.io, and for the check run, pull request comment and SARIF upload (see permissions in README).",
			field:         func(c *Config) any { return &c.GitHubToken },
		},
	}, append(append(append(cacheInputs(), scanInputs()...), reportInputs()...), gitlabInputs()...)...)
}

// DefaultConfig returns the Config with every input at its default.
func DefaultConfig() Config {
	var c Config
	for _, in := range Inputs() {
		if in.Default == "" {
			continue
		}
		// Defaults are constants of this package: a parse error is a bug
		// caught by the tests.
		_ = in.set(&c, []string{in.Default}, true, nil)
	}
	return c
}

// Validate checks c: syntax of every value, and that the context directory
// and the Dockerfile exist. It returns an *ExitError with CodeUsage.
func (c Config) Validate() error {
	for _, in := range Inputs() {
		if in.validate != nil {
			if err := in.validate(&c); err != nil {
				return &ExitError{Code: CodeUsage, Err: err}
			}
		}
	}
	for _, in := range Inputs() {
		if in.Kind != KindMap {
			continue
		}
		m := *in.field(&c).(*map[string]string)
		for k := range m {
			if k == "" || strings.ContainsAny(k, "= \t\n") {
				return usageErrorf("invalid %s key %q", in.Name, k)
			}
		}
	}
	for _, in := range Inputs() {
		if (c.ScanImage != "" || len(c.MergeImages) > 0) && (in.Name == "context" || in.Name == "file") {
			continue // ship scan builds nothing
		}
		if in.check != nil {
			if err := in.check(&c); err != nil {
				return &ExitError{Code: CodeUsage, Err: err}
			}
		}
	}
	if c.SourceDateEpoch != nil && c.SourceDateEpoch.Unix() < 0 {
		return usageErrorf("SOURCE_DATE_EPOCH must not be negative")
	}
	return nil
}

// LogValue implements slog.LogValuer: every input, secrets redacted.
func (c Config) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, in := range Inputs() {
		v := in.field(&c)
		if in.Secret {
			if s := *v.(*string); s != "" {
				v = "***"
			} else {
				v = ""
			}
		}
		switch p := v.(type) {
		case *string:
			v = *p
		case *bool:
			v = *p
		case *int:
			v = *p
		case *[]string:
			v = *p
		case *map[string]string:
			v = *p
		}
		attrs = append(attrs, slog.Any(in.Name, v))
	}
	return slog.GroupValue(attrs...)
}

// secrets returns the non-empty secret values of c.
func (c Config) secrets() []string {
	var out []string
	for _, in := range Inputs() {
		if !in.Secret {
			continue
		}
		if s := *in.field(&c).(*string); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// set parses raw (one value per source item: one string from an input or
// variable, or one per repeated flag) into the field of in. split says
// whether each item may hold several list items (comma or newline
// separated); repeated singular flags (--build-arg) are not split.
func (in Input) set(c *Config, raw []string, split bool, lookup LookupEnv) error {
	if len(raw) == 0 && (in.Kind == KindString || in.Kind == KindBool || in.Kind == KindInt) {
		return nil
	}
	switch p := in.field(c).(type) {
	case *string:
		*p = raw[len(raw)-1]
	case *int:
		v := strings.TrimSpace(raw[len(raw)-1])
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid %s value %q: want a whole number, 0 or more", in.Name, v)
		}
		*p = n
	case *bool:
		v := strings.ToLower(strings.TrimSpace(raw[len(raw)-1]))
		switch v {
		case "true", "1", "yes", "on":
			*p = true
		case "false", "0", "no", "off", "":
			*p = false
		default:
			return fmt.Errorf("invalid %s value %q: want true or false", in.Name, raw[len(raw)-1])
		}
	case *[]string:
		var out []string
		for _, r := range raw {
			for _, item := range splitItems(r, split, in.Kind != KindLines) {
				if !slices.Contains(out, item) {
					out = append(out, item)
				}
			}
		}
		*p = out
	case *map[string]string:
		out := map[string]string{}
		for _, r := range raw {
			for _, item := range splitItems(r, split, false) {
				k, v, ok := strings.Cut(item, "=")
				k = strings.TrimSpace(k)
				if k == "" || strings.ContainsAny(k, " \t") {
					return fmt.Errorf("invalid %s item %q: want KEY=VALUE", in.Name, item)
				}
				if !ok {
					if !in.bareEnv {
						out[k] = ""
						continue
					}
					// As docker build: a bare KEY takes the environment's
					// value and is left out when the variable is unset.
					if lookup == nil {
						continue
					}
					if ev, found := lookup(k); found {
						out[k] = ev
					}
					continue
				}
				out[k] = v
			}
		}
		*p = out
	default:
		return fmt.Errorf("input %s: unsupported field type %T", in.Name, p)
	}
	return nil
}

// splitItems splits an input value into items: lines, and for lists also
// commas. Items are trimmed; empty ones dropped.
func splitItems(s string, split, commas bool) []string {
	if !split {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil
		}
		return []string{s}
	}
	sep := func(r rune) bool { return r == '\n' || r == '\r' || (commas && r == ',') }
	var out []string
	for _, f := range strings.FieldsFunc(s, sep) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseTag parses an image reference that must be a tag (not a digest).
func parseTag(s string) (name.Tag, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return name.Tag{}, fmt.Errorf("invalid tag %q: %w", s, err)
	}
	t, ok := ref.(name.Tag)
	if !ok {
		return name.Tag{}, fmt.Errorf("invalid tag %q: a digest reference cannot be tagged", s)
	}
	return t, nil
}

// parsePlatform parses "os/arch[/variant]".
func parsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: want OS/ARCH[/VARIANT]", s)
	}
	return *p, nil
}

// resolveFile applies the computed defaults of File and Output.
func (c *Config) resolveFile() {
	if c.File == "" && c.Context != "" {
		c.File = filepath.Join(c.Context, "Dockerfile")
	}
	if c.Output == "" && !c.Push {
		c.Output = DefaultOutput
	}
}

// DefaultOutput is where the OCI image layout goes when nothing is pushed
// and no output is set.
const DefaultOutput = "./ship-out"

// platformName is os/arch[/variant] as users write it (arm64 without its
// default variant v8); platforms compare by it.
func platformName(p v1.Platform) string {
	if p.Architecture == "arm64" && p.Variant == "v8" {
		p.Variant = ""
	}
	return p.String()
}

// targetPlatforms are the platforms to build, parsed (checked by
// Validate); one zero Platform (the machine's) when none is given.
func (c Config) targetPlatforms() []v1.Platform {
	if len(c.Platforms) == 0 {
		return []v1.Platform{{}}
	}
	out := make([]v1.Platform, 0, len(c.Platforms))
	for _, s := range c.Platforms {
		p, _ := parsePlatform(s)
		out = append(out, p)
	}
	return out
}

// parseSize reads a size such as 5GB, 500MB, 1.5GiB or 1048576 (bytes);
// unlimited is -1.
func parseSize(s string) (int64, error) {
	v := strings.TrimSpace(s)
	if strings.EqualFold(v, "unlimited") {
		return -1, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	num, mult := strings.ToUpper(v), 1.0
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("invalid size %q: want e.g. 5GB, 500MB or unlimited", s)
	}
	return int64(f * mult), nil
}
