package action

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/intesys/ship-action/internal/build"
	"github.com/intesys/ship-action/internal/dockerfile"
)

const (
	testPassword = "s3cr3t-Passw0rd"
	testToken    = "ghp_T0kenValue123"
)

// fakeClient is a registry that pushes nothing.
type fakeClient struct {
	pushErr error
	mu      sync.Mutex
	pushed  []string
}

func (f *fakeClient) Image(context.Context, string, v1.Platform) (v1.Image, error) {
	return nil, errors.New("no base images here")
}

func (f *fakeClient) Push(_ context.Context, img v1.Image, tags []string) (v1.Hash, error) {
	if f.pushErr != nil {
		return v1.Hash{}, f.pushErr
	}
	f.mu.Lock()
	f.pushed = append(f.pushed, tags...)
	f.mu.Unlock()
	return img.Digest()
}

// fakeBuild returns a builder that yields img (or err) with two stages.
func fakeBuild(img v1.Image, err error) builderFunc {
	return func(ctx context.Context, req build.Request, _ ...build.Option) (*build.Result, error) {
		if err != nil {
			return nil, err
		}
		if e := ctx.Err(); e != nil {
			return nil, e
		}
		if req.ContextDir == "" || req.DockerfilePath == "" {
			return nil, errors.New("request without context or Dockerfile")
		}
		loc := func(l int) dockerfile.Location { return dockerfile.Location{File: "Dockerfile", Line: l, EndLine: l} }
		return &build.Result{Image: img, Stages: []build.Stage{
			{Index: 0, Name: "src", Base: "scratch", Steps: []build.Step{
				{Instruction: "COPY a|b /src", Location: loc(2), Duration: 12 * time.Millisecond, LayerSize: 2048},
			}},
			{Index: 1, Base: "scratch", Steps: []build.Step{
				{Instruction: "COPY --from=src /src /app", Location: loc(4), Duration: 3 * time.Millisecond, LayerSize: 1536},
				{Instruction: `CMD ["/app"]`, Location: loc(5), EmptyLayer: true},
			}},
		}}, nil
	}
}

// runBed is one Run's world: directories, environment, captured streams.
type runBed struct {
	dir, tempBase  string
	env            map[string]string
	stdout, logs   bytes.Buffer
	client         *fakeClient
	realClient     bool // use the registry package's client
	img            v1.Image
	digest         v1.Hash
	buildErr       error
	ctx            context.Context
	cfg            Config
	githubOut, sum string
}

func newBed(t *testing.T) *runBed {
	t.Helper()
	dir := t.TempDir()
	b := &runBed{dir: dir, tempBase: filepath.Join(dir, "tmp"), env: map[string]string{}, client: &fakeClient{}, ctx: context.Background()}
	for _, d := range []string{"ctx", "tmp", "work"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ctx", "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	b.img = img
	if b.digest, err = img.Digest(); err != nil {
		t.Fatal(err)
	}
	b.cfg = DefaultConfig()
	b.cfg.Scan = false // scans are tested in scan_test.go, with a fixture DB
	b.cfg.Context = filepath.Join(dir, "ctx")
	b.cfg.File = filepath.Join(dir, "ctx", "Dockerfile")
	b.cfg.Output = filepath.Join(dir, "out")
	b.githubOut = filepath.Join(dir, "github_output")
	b.sum = filepath.Join(dir, "step_summary")
	return b
}

func (b *runBed) github() {
	b.env["GITHUB_ACTIONS"] = "true"
	b.env["GITHUB_OUTPUT"] = b.githubOut
	b.env["GITHUB_STEP_SUMMARY"] = b.sum
}

func (b *runBed) run() error {
	opts := []Option{
		WithEnv(envOf(b.env)),
		WithStdout(&b.stdout),
		WithLogger(slog.New(slog.NewTextHandler(&b.logs, nil))),
		withWorkDir(filepath.Join(b.dir, "work")),
		withTempDir(b.tempBase),
		withBuilder(fakeBuild(b.img, b.buildErr)),
	}
	if !b.realClient {
		opts = append(opts, withClient(b.client))
	}
	return Run(b.ctx, b.cfg, opts...)
}

// lastJSON decodes the last stdout line.
func (b *runBed) lastJSON(t *testing.T) Outputs {
	t.Helper()
	lines := strings.Split(strings.TrimRight(b.stdout.String(), "\n"), "\n")
	var out Outputs
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		t.Fatalf("last stdout line is not the outputs JSON: %v\n%s", err, b.stdout.String())
	}
	return out
}

// githubOutputs parses a GITHUB_OUTPUT file (name<<DELIM lines).
func githubOutputs(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading GITHUB_OUTPUT: %v", err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		k, delim, ok := strings.Cut(sc.Text(), "<<")
		if !ok {
			t.Fatalf("unexpected GITHUB_OUTPUT line %q", sc.Text())
		}
		var val []string
		for sc.Scan() && sc.Text() != delim {
			val = append(val, sc.Text())
		}
		out[k] = strings.Join(val, "\n")
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// layoutDigests returns the manifest digests and ref names of an OCI layout.
func layoutDigests(t *testing.T, dir string) ([]string, []string) {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("reading OCI layout %s: %v", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var ds, names []string
	for _, d := range m.Manifests {
		ds = append(ds, d.Digest.String())
		names = append(names, d.Annotations["io.containerd.image.name"])
	}
	return ds, names
}

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(b *runBed)
		wantCode int
		wantErr  string // substring of the error
		check    func(t *testing.T, b *runBed, err error)
	}{
		{
			name: "local build without tags",
			check: func(t *testing.T, b *runBed, _ error) {
				out := b.lastJSON(t)
				if out.Digest != b.digest.String() || out.Image != b.digest.String() {
					t.Errorf("outputs %+v, want digest %s as digest and image", out, b.digest)
				}
				if len(out.Tags) != 0 || out.Metadata.Pushed {
					t.Errorf("outputs %+v: no tags, not pushed expected", out)
				}
				if len(out.Metadata.Stages) != 2 || out.Metadata.Stages[1].Steps[0].LayerSize != 1536 || out.Metadata.Stages[0].Steps[0].Line != 2 {
					t.Errorf("metadata stages %+v", out.Metadata.Stages)
				}
				if out.Metadata.Size <= 512 {
					t.Errorf("metadata size %d, want manifest+config+layers", out.Metadata.Size)
				}
				ds, _ := layoutDigests(t, b.cfg.Output)
				if !slices.Equal(ds, []string{b.digest.String()}) {
					t.Errorf("layout manifests %v, want [%s]", ds, b.digest)
				}
				if _, err := os.Stat(filepath.Join(b.dir, "work", "ship.env")); err == nil {
					t.Error("ship.env written outside GitLab")
				}
				if len(b.client.pushed) != 0 {
					t.Errorf("pushed %v without --push", b.client.pushed)
				}
				for _, want := range []string{"msg=building", "msg=built", "msg=\"writing OCI image layout\""} {
					if !strings.Contains(b.logs.String(), want) {
						t.Errorf("logs miss %q:\n%s", want, b.logs.String())
					}
				}
			},
		},
		{
			name: "tags and tarball",
			setup: func(b *runBed) {
				b.cfg.Tags = []string{"localhost:5000/app:1", "localhost:5000/app:latest"}
				b.cfg.OutputTar = filepath.Join(b.dir, "tars", "image.tar")
			},
			check: func(t *testing.T, b *runBed, _ error) {
				out := b.lastJSON(t)
				if want := "localhost:5000/app@" + b.digest.String(); out.Image != want {
					t.Errorf("image %q, want %q", out.Image, want)
				}
				_, names := layoutDigests(t, b.cfg.Output)
				if !slices.Equal(names, []string{"localhost:5000/app:1", "localhost:5000/app:latest"}) {
					t.Errorf("layout names %v", names)
				}
				for _, tag := range b.cfg.Tags {
					ti, err := tarball.ImageFromPath(b.cfg.OutputTar, ptrTag(t, tag))
					if err != nil {
						t.Fatalf("tarball has no %s: %v", tag, err)
					}
					got, _ := ti.ConfigName()
					want, _ := b.img.ConfigName()
					if got != want {
						t.Errorf("tarball config %s, want %s", got, want)
					}
				}
				entries, _ := os.ReadDir(filepath.Dir(b.cfg.OutputTar))
				if len(entries) != 1 {
					t.Errorf("tarball directory holds %d entries, want only the tarball", len(entries))
				}
			},
		},
		{
			name:  "tarball without tags is named",
			setup: func(b *runBed) { b.cfg.OutputTar = filepath.Join(b.dir, "image.tar") },
			check: func(t *testing.T, b *runBed, _ error) {
				if _, err := tarball.ImageFromPath(b.cfg.OutputTar, ptrTag(t, localTag)); err != nil {
					t.Errorf("tarball has no %s: %v", localTag, err)
				}
			},
		},
		{
			name: "github outputs, summary and masks",
			setup: func(b *runBed) {
				b.github()
				b.cfg.Tags = []string{"ghcr.io/intesys/app:1", "ghcr.io/intesys/app:sha"}
				b.cfg.Push = true
				b.cfg.RegistryUsername, b.cfg.RegistryPassword, b.cfg.GitHubToken = "bot", testPassword, testToken
			},
			check: func(t *testing.T, b *runBed, _ error) {
				outs := githubOutputs(t, b.githubOut)
				if outs["digest"] != b.digest.String() {
					t.Errorf("digest output %q", outs["digest"])
				}
				if want := "ghcr.io/intesys/app@" + b.digest.String(); outs["image"] != want {
					t.Errorf("image output %q, want %q", outs["image"], want)
				}
				if outs["tags"] != "ghcr.io/intesys/app:1,ghcr.io/intesys/app:sha" {
					t.Errorf("tags output %q", outs["tags"])
				}
				var md Metadata
				if err := json.Unmarshal([]byte(outs["metadata"]), &md); err != nil || md.Digest != b.digest.String() || !md.Pushed {
					t.Errorf("metadata output %q (%v)", outs["metadata"], err)
				}
				if !slices.Equal(b.client.pushed, b.cfg.Tags) {
					t.Errorf("pushed %v", b.client.pushed)
				}
				sum := readFile(t, b.sum)
				for _, want := range []string{"| Stage |", "`COPY a\\|b /src`", "1.5 kB", b.digest.String(), "- `ghcr.io/intesys/app:sha`", "(pushed)", "| 1 | 4 |", "| 0 (src) | 2 |"} {
					if !strings.Contains(sum, want) {
						t.Errorf("summary misses %q:\n%s", want, sum)
					}
				}
				stdout := b.stdout.String()
				for _, s := range []string{testPassword, testToken} {
					if !strings.Contains(stdout, "::add-mask::"+s+"\n") {
						t.Errorf("secret not masked on stdout:\n%s", stdout)
					}
				}
				if !strings.Contains(b.logs.String(), "msg=pushed") {
					t.Errorf("logs miss the push:\n%s", b.logs.String())
				}
			},
		},
		{
			name: "gitlab dotenv",
			setup: func(b *runBed) {
				b.env["GITLAB_CI"] = "true"
				b.cfg.Tags = []string{"registry.gitlab.example/g/p:1", "registry.gitlab.example/g/p:main"}
				b.cfg.Push = true
				b.cfg.RegistryUsername, b.cfg.RegistryPassword = "gitlab-ci-token", testPassword
			},
			check: func(t *testing.T, b *runBed, _ error) {
				got := readFile(t, filepath.Join(b.dir, "work", "ship.env"))
				want := fmt.Sprintf("SHIP_DIGEST=%s\nSHIP_IMAGE=registry.gitlab.example/g/p@%s\nSHIP_TAGS=registry.gitlab.example/g/p:1,registry.gitlab.example/g/p:main\n", b.digest, b.digest)
				if got != want {
					t.Errorf("ship.env\n got %q\nwant %q", got, want)
				}
				if strings.Contains(b.stdout.String(), "::add-mask::") {
					t.Error("GitHub workflow commands outside GitHub")
				}
				if _, err := os.Stat(b.githubOut); err == nil {
					t.Error("GITHUB_OUTPUT written on GitLab")
				}
			},
		},
		{
			name: "build failure",
			setup: func(b *runBed) {
				b.github()
				b.buildErr = errors.New("Dockerfile:3: RUN exited with 1 (last output line: make: *** [all] Error 1)")
			},
			wantCode: CodeBuild,
			wantErr:  "Dockerfile:3: RUN exited with 1 (last output line: make: *** [all] Error 1)",
			check: func(t *testing.T, b *runBed, _ error) {
				if _, err := os.Stat(b.cfg.Output); err == nil {
					t.Error("output written after a failed build")
				}
				if _, err := os.Stat(b.githubOut); err == nil {
					t.Error("GitHub outputs written after a failed build")
				}
				if b.stdout.Len() != 0 {
					t.Errorf("stdout after a failed build: %q", b.stdout.String())
				}
			},
		},
		{
			name: "build error with a secret and several lines",
			setup: func(b *runBed) {
				b.cfg.RegistryUsername, b.cfg.RegistryPassword = "u", testPassword
				b.buildErr = fmt.Errorf("pulling base:\nauth %s rejected", testPassword)
			},
			wantCode: CodeBuild,
			check: func(t *testing.T, b *runBed, err error) {
				if want := "pulling base: auth *** rejected"; err.Error() != want {
					t.Errorf("error %q, want %q", err, want)
				}
			},
		},
		{
			name: "push failure",
			setup: func(b *runBed) {
				b.github()
				b.cfg.Tags = []string{"localhost:5000/app:1"}
				b.cfg.Push = true
				b.cfg.RegistryUsername, b.cfg.RegistryPassword = "u", testPassword
				b.client.pushErr = fmt.Errorf("pushing localhost:5000/app:1: UNAUTHORIZED for u:%s", testPassword)
			},
			wantCode: CodePush,
			wantErr:  "pushing localhost:5000/app:1: UNAUTHORIZED for u:***",
			check: func(t *testing.T, b *runBed, _ error) {
				if _, err := os.Stat(b.githubOut); err == nil {
					t.Error("GitHub outputs written after a failed push")
				}
				if _, err := layout.ImageIndexFromPath(b.cfg.Output); err != nil {
					t.Errorf("the OCI layout is written before the push: %v", err)
				}
			},
		},
		{
			name:     "cancelled",
			setup:    func(b *runBed) { ctx, cancel := context.WithCancel(context.Background()); cancel(); b.ctx = ctx },
			wantCode: CodeBuild,
			wantErr:  "context canceled",
		},
		{
			name: "invalid config",
			setup: func(b *runBed) {
				b.cfg.Push = true
			},
			wantCode: CodeUsage,
			wantErr:  "push needs at least one tag",
		},
		{
			name: "refuses to replace a directory that is not a layout",
			setup: func(b *runBed) {
				b.cfg.Output = filepath.Join(b.dir, "ctx")
			},
			wantCode: CodeUsage,
			wantErr:  "is not an OCI image layout; refusing to replace it",
			check: func(t *testing.T, b *runBed, _ error) {
				if _, err := os.Stat(filepath.Join(b.dir, "ctx", "Dockerfile")); err != nil {
					t.Errorf("the directory was touched: %v", err)
				}
			},
		},
		{
			name: "replaces a previous layout",
			setup: func(b *runBed) {
				old, _ := random.Image(64, 1)
				add := func(p layout.Path, o ...layout.Option) error { return p.AppendImage(old, o...) }
				if err := writeLayout(b.cfg.Output, add, nil); err != nil {
					panic(err)
				}
			},
			check: func(t *testing.T, b *runBed, _ error) {
				ds, _ := layoutDigests(t, b.cfg.Output)
				if !slices.Equal(ds, []string{b.digest.String()}) {
					t.Errorf("layout manifests %v, want only [%s]", ds, b.digest)
				}
				entries, _ := os.ReadDir(b.dir)
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), ".out") {
						t.Errorf("leftover %s", e.Name())
					}
				}
			},
		},
		{
			name: "registry client from the config",
			setup: func(b *runBed) {
				b.realClient = true
				b.cfg.File = "" // Run applies the default <context>/Dockerfile
				b.cfg.Tags = []string{"localhost:5000/app:1"}
				b.cfg.RegistryUsername, b.cfg.RegistryPassword, b.cfg.GitHubToken = "u", testPassword, testToken
				b.cfg.InsecureRegistries = []string{"localhost:5000"}
				b.cfg.RegistryMirror = "http://mirror.local:5001"
			},
			check: func(t *testing.T, b *runBed, _ error) {
				if out := b.lastJSON(t); out.Digest != b.digest.String() {
					t.Errorf("digest %q", out.Digest)
				}
			},
		},
		{
			name:  "help",
			setup: func(b *runBed) { b.cfg = Config{Help: true} },
			check: func(t *testing.T, b *runBed, _ error) {
				if b.stdout.String() != Usage() {
					t.Errorf("stdout is not the usage: %q", b.stdout.String())
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t)
			if tc.setup != nil {
				tc.setup(b)
			}
			err := b.run()
			if got := ExitCode(err); got != tc.wantCode {
				t.Fatalf("exit code %d (%v), want %d", got, err, tc.wantCode)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want it to contain %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error has several lines: %q", err)
			}
			if tc.check != nil {
				tc.check(t, b, err)
			}
			// No temp files left, whatever happened.
			if left, _ := os.ReadDir(b.tempBase); len(left) != 0 {
				t.Errorf("temp files left: %v", left)
			}
			// No secret anywhere but in GitHub's add-mask commands.
			for _, s := range []string{testPassword, testToken} {
				stdout := strings.ReplaceAll(b.stdout.String(), "::add-mask::"+s+"\n", "")
				if strings.Contains(stdout, s) || strings.Contains(b.logs.String(), s) || (err != nil && strings.Contains(err.Error(), s)) {
					t.Errorf("secret leaked to stdout, logs or error")
				}
				for _, f := range []string{b.githubOut, b.sum, filepath.Join(b.dir, "work", "ship.env")} {
					if data, err := os.ReadFile(f); err == nil && strings.Contains(string(data), s) {
						t.Errorf("secret leaked to %s", f)
					}
				}
			}
		})
	}
}

func ptrTag(t *testing.T, s string) *name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return &tag
}

func TestRedactHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	sec := &secretSet{}
	_ = sec.add("topsecret")
	log := slog.New(&redactHandler{next: slog.NewJSONHandler(&buf, nil), secrets: sec})
	late := sec.maskFunc(log)
	late("found-later")
	log.With("token", "x-topsecret-x").WithGroup("g").Info("auth with topsecret",
		"err", errors.New("bad found-later"), "nested", slog.GroupValue(slog.String("p", "topsecret")), "n", 3)
	out := buf.String()
	if strings.Contains(out, "topsecret") || strings.Contains(out, "found-later") {
		t.Errorf("secret in log: %s", out)
	}
	if !strings.Contains(out, `"n":3`) || strings.Count(out, "***") != 4 {
		t.Errorf("log lost content: %s", out)
	}
}

func TestContextExcludes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := filepath.Join(dir, "ctx")
	tests := []struct {
		name      string
		output    string
		outputTar string
		want      []string
	}{
		{"outside", filepath.Join(dir, "out"), "", nil},
		{"default inside", filepath.Join(ctx, "ship-out"), "", []string{"ship-out"}},
		{"nested and tar", filepath.Join(ctx, "build", "out"), filepath.Join(ctx, "img.tar"), []string{"build/out", "img.tar"}},
		{"the context itself", ctx, "", nil},
		{"sibling with common prefix", ctx + "-out", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Context: ctx, Output: tc.output, OutputTar: tc.outputTar}
			if got := contextExcludes(cfg); !slices.Equal(got, tc.want) {
				t.Errorf("contextExcludes = %q, want %q", got, tc.want)
			}
		})
	}
}
