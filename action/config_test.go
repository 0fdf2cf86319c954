package action

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// envOf returns a LookupEnv over m.
func envOf(m map[string]string) LookupEnv {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestInputsTable(t *testing.T) {
	t.Parallel()
	flags := map[string]string{}
	for _, in := range Inputs() {
		for _, f := range []string{in.Name, in.Alias, in.Short} {
			if f == "" {
				continue
			}
			if other, dup := flags[f]; dup {
				t.Errorf("flag %q used by %s and %s", f, other, in.Name)
			}
			flags[f] = in.Name
		}
		if in.Description == "" {
			t.Errorf("input %s has no description", in.Name)
		}
		var c Config
		var want reflect.Kind
		switch in.Kind {
		case KindString:
			want = reflect.String
		case KindBool:
			want = reflect.Bool
		case KindList, KindLines:
			want = reflect.Slice
		case KindMap:
			want = reflect.Map
		case KindInt:
			want = reflect.Int
		}
		if got := reflect.TypeOf(in.field(&c)).Elem().Kind(); got != want {
			t.Errorf("input %s: kind %s but field is a %s", in.Name, in.Kind, got)
		}
		if (in.Kind == KindList || in.Kind == KindMap || in.Kind == KindLines) != (in.Alias != "") {
			t.Errorf("input %s: list and map inputs, and only they, need a singular flag alias", in.Name)
		}
		if in.Default != "" {
			if err := in.set(&c, []string{in.Default}, true, nil); err != nil {
				t.Errorf("input %s: default %q does not parse: %v", in.Name, in.Default, err)
			}
		}
	}
	if !strings.Contains(Usage(), "--insecure-registry") || !strings.Contains(Usage(), `Default: ./ship-out when not pushing`) {
		t.Errorf("usage misses flags or defaults:\n%s", Usage())
	}
	for _, in := range Inputs() {
		if !strings.Contains(Usage(), "--"+in.Name) || !strings.Contains(Usage(), in.EnvName()) {
			t.Errorf("usage misses input %s", in.Name)
		}
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(c Config) any
		want  any
	}{
		{"default string", nil, nil, func(c Config) any { return c.Output }, "./ship-out"},
		{"default file from context", nil, map[string]string{"SHIP_CONTEXT": "app"}, func(c Config) any { return c.File }, filepath.Join("app", "Dockerfile")},
		{"ship env over default", nil, map[string]string{"SHIP_OUTPUT": "env-out"}, func(c Config) any { return c.Output }, "env-out"},
		{"input over ship env", nil, map[string]string{"SHIP_OUTPUT": "env-out", "INPUT_OUTPUT": "in-out"}, func(c Config) any { return c.Output }, "in-out"},
		{"flag over input", []string{"--output", "flag-out"}, map[string]string{"SHIP_OUTPUT": "env-out", "INPUT_OUTPUT": "in-out"}, func(c Config) any { return c.Output }, "flag-out"},
		{"empty input is unset", nil, map[string]string{"SHIP_OUTPUT": "env-out", "INPUT_OUTPUT": "  "}, func(c Config) any { return c.Output }, "env-out"},
		{"dashes in input and env names", nil, map[string]string{"INPUT_OUTPUT-TAR": "a.tar", "SHIP_CACHE_DIR": "/c"}, func(c Config) any { return c.OutputTar + " " + c.CacheDir }, "a.tar /c"},
		{"list input newline and comma", nil, map[string]string{"INPUT_TAGS": "r/a:1\nr/a:2, r/a:3\n"}, func(c Config) any { return c.Tags }, []string{"r/a:1", "r/a:2", "r/a:3"}},
		{"list flags replace input", []string{"-t", "r/x:1", "--tag=r/x:2", "--tags", "r/x:3,r/x:4"}, map[string]string{"INPUT_TAGS": "r/a:1"}, func(c Config) any { return c.Tags }, []string{"r/x:1", "r/x:2", "r/x:3", "r/x:4"}},
		{"ship env list", nil, map[string]string{"SHIP_INSECURE_REGISTRIES": "localhost:5000,reg:80"}, func(c Config) any { return c.InsecureRegistries }, []string{"localhost:5000", "reg:80"}},
		{"bool default", nil, nil, func(c Config) any { return c.Push }, false},
		{"bool flag alone", []string{"--push"}, map[string]string{"INPUT_PUSH": "false"}, func(c Config) any { return c.Push }, true},
		{"bool flag false over input", []string{"--push=false"}, map[string]string{"INPUT_PUSH": "true"}, func(c Config) any { return c.Push }, false},
		{"bool input over env", nil, map[string]string{"INPUT_PUSH": "true", "SHIP_PUSH": "false"}, func(c Config) any { return c.Push }, true},
		{"map input lines", nil, map[string]string{"INPUT_BUILD-ARGS": "A=1\nB=x,y=z\n\n"}, func(c Config) any { return c.BuildArgs }, map[string]string{"A": "1", "B": "x,y=z"}},
		{"map flags", []string{"--build-arg", "A=1", "--build-arg=B=2"}, map[string]string{"SHIP_BUILD_ARGS": "C=3"}, func(c Config) any { return c.BuildArgs }, map[string]string{"A": "1", "B": "2"}},
		{"bare build-arg from env", []string{"--build-arg", "HOME_DIR", "--build-arg", "MISSING"}, map[string]string{"HOME_DIR": "/home/x"}, func(c Config) any { return c.BuildArgs }, map[string]string{"HOME_DIR": "/home/x"}},
		{"bare label is empty", []string{"--label", "a"}, nil, func(c Config) any { return c.Labels }, map[string]string{"a": ""}},
		{"short file", []string{"-f", "x/Dockerfile.dev"}, nil, func(c Config) any { return c.File }, "x/Dockerfile.dev"},
		{"short attached", []string{"-tr/a:1"}, nil, func(c Config) any { return c.Tags }, []string{"r/a:1"}},
		{"single dash long", []string{"-target", "prod"}, nil, func(c Config) any { return c.Target }, "prod"},
		{"last string flag wins", []string{"--target", "a", "--target", "b"}, nil, func(c Config) any { return c.Target }, "b"},
		{"secret from env", nil, map[string]string{"SHIP_REGISTRY_PASSWORD": "pw", "INPUT_GITHUB-TOKEN": "tok"}, func(c Config) any { return c.RegistryPassword + c.GitHubToken }, "pwtok"},
		{"source date epoch", nil, map[string]string{"SOURCE_DATE_EPOCH": "1700000000"}, func(c Config) any { return c.SourceDateEpoch.Unix() }, int64(1700000000)},
		{"help", []string{"--tag", "x", "--help"}, nil, func(c Config) any { return c.Help }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := parse(tc.args, envOf(tc.env))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := tc.check(c); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	if c.Context != "." || c.Output != "" || c.Push {
		t.Errorf("DefaultConfig() = %+v", c)
	}
	// The layout is written by default only when nothing is pushed.
	local := DefaultConfig()
	local.resolveFile()
	if local.Output != DefaultOutput {
		t.Errorf("local run: Output = %q, want %q", local.Output, DefaultOutput)
	}
	pushing := DefaultConfig()
	pushing.Push = true
	pushing.resolveFile()
	if pushing.Output != "" {
		t.Errorf("pushing run: Output = %q, want none", pushing.Output)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := []string{"--context", dir}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the whole one-line message
	}{
		{"missing context", []string{"--context", filepath.Join(dir, "nope")}, nil, "context directory " + filepath.Join(dir, "nope") + " does not exist"},
		{"context is a file", []string{"--context", filepath.Join(dir, "Dockerfile")}, nil, "context " + filepath.Join(dir, "Dockerfile") + " is not a directory"},
		{"missing dockerfile", []string{"--context", filepath.Join(dir, "sub")}, nil, "dockerfile " + filepath.Join(dir, "sub", "Dockerfile") + " does not exist"},
		{"dockerfile is a dir", append(ctx, "-f", filepath.Join(dir, "sub")), nil, "dockerfile " + filepath.Join(dir, "sub") + " is a directory"},
		{"build-arg empty key", append(ctx, "--build-arg", "=v"), nil, `invalid build-args item "=v": want KEY=VALUE`},
		{"label empty key", append(ctx, "--label", "=v"), nil, `invalid labels item "=v": want KEY=VALUE`},
		{"label key with space", nil, map[string]string{"SHIP_CONTEXT": dir, "INPUT_LABELS": "a b=c"}, `invalid labels item "a b=c": want KEY=VALUE`},
		{"push without tags", append(ctx, "--push"), nil, "push needs at least one tag (--tag)"},
		{"bad tag", append(ctx, "-t", "UPPER/Case:1"), nil, `invalid tag "UPPER/Case:1": could not parse reference: UPPER/Case:1`},
		{"digest as tag", append(ctx, "-t", "r/a@sha256:"+strings.Repeat("a", 64)), nil, `invalid tag "r/a@sha256:` + strings.Repeat("a", 64) + `": a digest reference cannot be tagged`},
		{"platform twice", append(ctx, "--platform", "linux/arm64", "--platform", "linux/arm64/v8"), nil, "platform linux/arm64/v8 is listed twice"},
		{"platforms input twice", nil, map[string]string{"SHIP_CONTEXT": dir, "INPUT_PLATFORMS": "linux/arm64/v8,linux/arm64"}, "platform linux/arm64 is listed twice"},
		{"several platforms in a tarball", append(ctx, "--platforms", "linux/amd64,linux/arm64", "--output-tar", "x.tar"), nil, "output-tar holds one image and 2 platforms are built: use output (an OCI layout holds the index)"},
		{"bad platform", append(ctx, "--platform", "linux"), nil, `invalid platform "linux": want OS/ARCH[/VARIANT]`},
		{"bad attestation", append(ctx, "--attest", "slsa"), nil, `invalid attestations value "slsa": want provenance, sbom or none`},
		{"bad cache size", append(ctx, "--cache-max-size", "lots"), nil, `cache-max-size: invalid size "lots": want e.g. 5GB, 500MB or unlimited`},
		{"none with provenance", nil, map[string]string{"SHIP_CONTEXT": dir, "INPUT_ATTESTATIONS": "none,provenance"}, "attestations: none cannot be combined with provenance"},
		{"bad bool", append(ctx, "--push=maybe"), nil, `invalid push value "maybe": want true or false`},
		{"bad bool input", nil, map[string]string{"SHIP_CONTEXT": dir, "INPUT_PUSH": "sure"}, `invalid push value "sure": want true or false`},
		{"user without password", append(ctx, "--registry-username", "u"), nil, "registry-username and registry-password must be set together"},
		{"insecure with path", append(ctx, "--insecure-registry", "host/path"), nil, `insecure registry "host/path": want HOST[:PORT]`},
		{"unknown flag", append(ctx, "--nope"), nil, "unknown flag --nope (see ship --help)"},
		{"missing value", []string{"--context"}, nil, "flag --context needs a value"},
		{"unknown command", []string{"scan", "--context", dir}, nil, `unknown command "scan" (see ship --help)`},
		{"stray argument", append(ctx, "extra"), nil, `unexpected argument "extra" (see ship --help)`},
		{"bad epoch", ctx, map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, `invalid SOURCE_DATE_EPOCH "yesterday": want a non-negative integer (seconds)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(tc.args, envOf(tc.env))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Code != CodeUsage {
				t.Errorf("error %v: want an *ExitError with code %d", err, CodeUsage)
			}
			if ExitCode(err) != CodeUsage {
				t.Errorf("ExitCode = %d, want %d", ExitCode(err), CodeUsage)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("message\n got %q\nwant %q", got, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message has several lines: %q", err)
			}
		})
	}
}

func TestLoadOK(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"--context", dir, "-t", "localhost:5000/app:1", "--push", "--platform", "linux/arm64/v8",
		"--label", "org.opencontainers.image.title=app"}, envOf(map[string]string{"SOURCE_DATE_EPOCH": "0"}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.File != filepath.Join(dir, "Dockerfile") {
		t.Errorf("File = %q", c.File)
	}
	if !c.Push || !slices.Equal(c.Tags, []string{"localhost:5000/app:1"}) {
		t.Errorf("Push/Tags = %v %v", c.Push, c.Tags)
	}
	if want := map[string]string{"org.opencontainers.image.title": "app"}; !maps.Equal(c.Labels, want) {
		t.Errorf("Labels = %v", c.Labels)
	}
	if c.SourceDateEpoch == nil || !c.SourceDateEpoch.Equal(time.Unix(0, 0)) {
		t.Errorf("SourceDateEpoch = %v", c.SourceDateEpoch)
	}
}

func TestLogValueRedactsSecrets(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.RegistryPassword, c.GitHubToken, c.Target = "hunter2-secret", "ghp_token", "prod"
	s := c.LogValue().String()
	if strings.Contains(s, "hunter2-secret") || strings.Contains(s, "ghp_token") {
		t.Errorf("LogValue shows a secret: %s", s)
	}
	if !strings.Contains(s, "prod") || !strings.Contains(s, "***") {
		t.Errorf("LogValue misses values: %s", s)
	}
}

// TestParseSize reads cache-max-size values.
func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"5GB": 5e9, "500MB": 5e8, "1.5GiB": 3 << 29, "1048576": 1 << 20,
		"10 kb": 1e4, "0": 0, "unlimited": -1, "Unlimited": -1, "2TB": 2e12, "7B": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "five", "-1GB", "5XB", "GB", "NaN", "Inf"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded, want an error", in)
		}
	}
}
