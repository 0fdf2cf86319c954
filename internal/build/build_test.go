package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/intesys/ship-action/internal/dockerfile"
)

// memSource is an in-memory ImageSource that records what was asked.
type memSource struct {
	mu        sync.Mutex
	images    map[string]v1.Image
	asked     []string
	platforms []string
	ctxs      []context.Context // the contexts images were resolved with
}

func (m *memSource) Image(ctx context.Context, ref string, p v1.Platform) (v1.Image, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ctxs = append(m.ctxs, ctx)
	m.asked = append(m.asked, ref)
	m.platforms = append(m.platforms, ref+" "+dockerfile.FormatPlatform(p))
	img, ok := m.images[ref]
	if !ok {
		return nil, fmt.Errorf("MANIFEST_UNKNOWN: %s not found", ref)
	}
	return img, nil
}

func (m *memSource) requested() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.asked...)
}

// countingLayer counts reads of a layer's content.
type countingLayer struct {
	v1.Layer
	reads *atomic.Int64
}

func (l countingLayer) Compressed() (io.ReadCloser, error) {
	l.reads.Add(1)
	return l.Layer.Compressed()
}

func (l countingLayer) Uncompressed() (io.ReadCloser, error) {
	l.reads.Add(1)
	return l.Layer.Uncompressed()
}

type tarFile struct {
	name, body string
	dir        bool
	mode       int64
}

func tarLayer(t *testing.T, files []tarFile) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1000, 0)}
		if f.dir {
			h.Typeflag, h.Size, h.Name = tar.TypeDir, 0, f.name+"/"
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if f.dir {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// baseImage is a small Docker-typed image with users, a config and history.
func baseImage(t *testing.T, reads *atomic.Int64, mutateCfg func(*v1.Config)) v1.Image {
	t.Helper()
	l := tarLayer(t, []tarFile{
		{name: "etc", dir: true},
		{name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"},
		{name: "etc/group", body: "root:x:0:\nappgrp:x:1001:\nstaff:x:50:\n"},
		{name: "bin", dir: true},
		{name: "bin/sh", body: "#!fake", mode: 0o755},
	})
	var layer v1.Layer = l
	if reads != nil {
		layer = countingLayer{Layer: l, reads: reads}
	}
	img := mutate.MediaType(empty.Image, types.DockerManifestSchema2)
	img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	img, err := mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.DockerLayer, History: v1.History{
		Created: v1.Time{Time: time.Unix(1000, 0).UTC()}, CreatedBy: "base layer",
	}})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(1000, 0).UTC()}
	cf.Config = v1.Config{
		Env:        []string{"PATH=/bin", "BASE=1"},
		Cmd:        []string{"/bin/sh"},
		Labels:     map[string]string{"base": "yes"},
		WorkingDir: "/root",
	}
	if mutateCfg != nil {
		mutateCfg(&cf.Config)
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type fixture struct {
	dockerfile string
	files      map[string]string
	req        func(*Request)
}

func (f fixture) request(t *testing.T) Request {
	t.Helper()
	dir := t.TempDir()
	for name, body := range f.files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	df := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(df, []byte(f.dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1700000000, 0).UTC()
	req := Request{
		ContextDir:      dir,
		DockerfilePath:  df,
		Platform:        v1.Platform{OS: "linux", Architecture: "amd64"},
		SourceDateEpoch: &epoch,
	}
	if f.req != nil {
		f.req(&req)
	}
	return req
}

func build(t *testing.T, f fixture, src *memSource) (*Result, *v1.ConfigFile, error) {
	t.Helper()
	if src == nil {
		src = &memSource{images: map[string]v1.Image{"base": baseImage(t, nil, nil)}}
	}
	res, err := Build(context.Background(), f.request(t), WithImageSource(src))
	if err != nil {
		return nil, nil, err
	}
	cf, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return res, cf, nil
}

// newHistory returns the created_by of the history entries the build added
// (comment buildkit.dockerfile.v0), with "!" appended for layer entries.
func newHistory(cf *v1.ConfigFile) []string {
	var out []string
	for _, h := range cf.History {
		if h.Comment != historyComment {
			continue
		}
		s := h.CreatedBy
		if !h.EmptyLayer {
			s += "!"
		}
		out = append(out, s)
	}
	return out
}

func TestBuildConfigAndHistory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fx      fixture
		history []string
		check   func(t *testing.T, cf *v1.ConfigFile)
	}{{
		name:    "scratch defaults",
		fx:      fixture{dockerfile: "FROM scratch\nENV A=1\n"},
		history: []string{"ENV A=1"},
		check: func(t *testing.T, cf *v1.ConfigFile) {
			wantEnv := []string{defaultPathEnv, "A=1"}
			if !reflect.DeepEqual(cf.Config.Env, wantEnv) {
				t.Errorf("Env = %q, want %q", cf.Config.Env, wantEnv)
			}
			if cf.Config.WorkingDir != "/" {
				t.Errorf("WorkingDir = %q, want /", cf.Config.WorkingDir)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("platform = %s/%s", cf.OS, cf.Architecture)
			}
			if len(cf.RootFS.DiffIDs) != 0 {
				t.Errorf("diff ids = %v, want none", cf.RootFS.DiffIDs)
			}
		},
	}, {
		name: "metadata instructions",
		fx: fixture{dockerfile: `FROM base
ARG V=7
ENV A=$V B="two words"
LABEL org.x=$A other=b
USER app:staff
EXPOSE 80 53/udp 8000-8001
VOLUME /data
STOPSIGNAL SIGTERM
SHELL ["/bin/bash", "-c"]
CMD echo hi
HEALTHCHECK --interval=5s CMD true
MAINTAINER me
`},
		history: []string{
			"ARG V=7", "ENV A=7 B=two words", "LABEL org.x=7 other=b", "USER app:staff",
			"EXPOSE [53/udp 80/tcp 8000/tcp 8001/tcp]", "VOLUME [/data]", "STOPSIGNAL SIGTERM",
			"SHELL [/bin/bash -c]", `CMD ["/bin/bash" "-c" "echo hi"]`,
			"HEALTHCHECK {Test:[CMD-SHELL true] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}",
			"MAINTAINER me",
		},
		check: func(t *testing.T, cf *v1.ConfigFile) {
			c := cf.Config
			if want := []string{"PATH=/bin", "BASE=1", "A=7", "B=two words"}; !reflect.DeepEqual(c.Env, want) {
				t.Errorf("Env = %q, want %q", c.Env, want)
			}
			if want := map[string]string{"base": "yes", "org.x": "7", "other": "b"}; !reflect.DeepEqual(c.Labels, want) {
				t.Errorf("Labels = %v, want %v", c.Labels, want)
			}
			if c.User != "app:staff" || c.StopSignal != "SIGTERM" || cf.Author != "me" || c.WorkingDir != "/root" {
				t.Errorf("User %q StopSignal %q Author %q WorkingDir %q", c.User, c.StopSignal, cf.Author, c.WorkingDir)
			}
			if len(c.ExposedPorts) != 4 {
				t.Errorf("ExposedPorts = %v", c.ExposedPorts)
			}
			if _, ok := c.Volumes["/data"]; !ok {
				t.Errorf("Volumes = %v", c.Volumes)
			}
			if want := []string{"/bin/bash", "-c", "echo hi"}; !reflect.DeepEqual(c.Cmd, want) || !c.ArgsEscaped {
				t.Errorf("Cmd = %q ArgsEscaped %v", c.Cmd, c.ArgsEscaped)
			}
			if c.Healthcheck == nil || c.Healthcheck.Interval != 5*time.Second {
				t.Errorf("Healthcheck = %+v", c.Healthcheck)
			}
		},
	}, {
		name:    "entrypoint resets inherited cmd",
		fx:      fixture{dockerfile: "FROM base\nENTRYPOINT [\"/bin/app\"]\n"},
		history: []string{`ENTRYPOINT ["/bin/app"]`},
		check: func(t *testing.T, cf *v1.ConfigFile) {
			if cf.Config.Cmd != nil {
				t.Errorf("Cmd = %q, want nil", cf.Config.Cmd)
			}
		},
	}, {
		name:    "entrypoint keeps cmd of the same stage",
		fx:      fixture{dockerfile: "FROM base\nCMD [\"x\"]\nENTRYPOINT /bin/app\n"},
		history: []string{`CMD ["x"]`, `ENTRYPOINT ["/bin/sh" "-c" "/bin/app"]`},
		check: func(t *testing.T, cf *v1.ConfigFile) {
			if want := []string{"x"}; !reflect.DeepEqual(cf.Config.Cmd, want) {
				t.Errorf("Cmd = %q", cf.Config.Cmd)
			}
		},
	}, {
		name: "copy and workdir",
		fx: fixture{
			dockerfile: "FROM base\nWORKDIR app\nCOPY --chown=app a.txt ./\nCOPY --chmod=600 a.txt /b.txt\nWORKDIR /etc\n",
			files:      map[string]string{"a.txt": "hello"},
		},
		history: []string{"WORKDIR /root/app!", "COPY --chown=app a.txt ./ # buildkit!", "COPY --chmod=600 a.txt /b.txt # buildkit!", "WORKDIR /etc!"},
		check: func(t *testing.T, cf *v1.ConfigFile) {
			if cf.Config.WorkingDir != "/etc" {
				t.Errorf("WorkingDir = %q", cf.Config.WorkingDir)
			}
			if len(cf.RootFS.DiffIDs) != 5 {
				t.Errorf("%d diff ids, want 5", len(cf.RootFS.DiffIDs))
			}
		},
	}, {
		name:    "heredoc",
		fx:      fixture{dockerfile: "FROM scratch\nARG WHO=world\nCOPY <<EOF /hello.txt\nhello $WHO\nEOF\n"},
		history: []string{"ARG WHO=world", "COPY <<EOF /hello.txt # buildkit!"},
	}, {
		name: "global args, build args and platform args",
		fx: fixture{
			dockerfile: "ARG BASE=nope\nARG TAG\nFROM $BASE\nARG TAG\nARG TARGETARCH\nARG OTHER=x\nENV T=$TAG A=$TARGETARCH O=$OTHER\n",
			req: func(r *Request) {
				r.BuildArgs = map[string]string{"BASE": "base", "TAG": "v1", "OTHER": "y"}
			},
		},
		history: []string{"ARG TAG=v1", "ARG TARGETARCH=amd64", "ARG OTHER=y", "ENV T=v1 A=amd64 O=y"},
	}, {
		name: "copy flags not in history",
		fx: fixture{
			dockerfile: "FROM base\nCOPY --link --exclude=*.md . /app/\nADD --chown=1:2 a.txt /b/\n",
			files:      map[string]string{"a.txt": "A", "b.md": "B"},
		},
		history: []string{"COPY . /app/ # buildkit!", "ADD --chown=1:2 a.txt /b/ # buildkit!"},
	}, {
		name: "labels from the request",
		fx: fixture{dockerfile: "FROM scratch\n", req: func(r *Request) {
			r.Labels = map[string]string{"org.opencontainers.image.source": "x"}
		}},
		check: func(t *testing.T, cf *v1.ConfigFile) {
			if cf.Config.Labels["org.opencontainers.image.source"] != "x" {
				t.Errorf("Labels = %v", cf.Config.Labels)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, cf, err := build(t, tt.fx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := newHistory(cf); !reflect.DeepEqual(got, tt.history) {
				t.Errorf("history:\n got %q\nwant %q", got, tt.history)
			}
			for _, h := range cf.History {
				if h.Comment == historyComment && !h.Created.Equal(time.Unix(1700000000, 0)) {
					t.Errorf("history %q created %v, want the epoch", h.CreatedBy, h.Created)
				}
			}
			if tt.check != nil {
				tt.check(t, cf)
			}
		})
	}
}

func TestBuildImageShape(t *testing.T) {
	t.Parallel()
	fx := fixture{dockerfile: "FROM base\nCOPY a /a\nENV X=1\n", files: map[string]string{"a": "A"}}
	res, cf, err := build(t, fx, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := res.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s / %s", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 2 || len(cf.RootFS.DiffIDs) != 2 {
		t.Fatalf("%d layers, %d diff ids, want 2", len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer media type %s", l.MediaType)
		}
	}
	layers, err := res.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		d, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		if d != cf.RootFS.DiffIDs[i] {
			t.Errorf("layer %d diff id %s, config says %s", i, d, cf.RootFS.DiffIDs[i])
		}
	}
	if len(cf.History) != 3 || cf.History[0].CreatedBy != "base layer" {
		t.Errorf("history = %+v", cf.History)
	}
	if !cf.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("created = %v", cf.Created)
	}
	if len(res.Stages) != 1 || len(res.Stages[0].Steps) != 2 {
		t.Fatalf("stages = %+v", res.Stages)
	}
	s := res.Stages[0].Steps
	if s[0].Instruction != "COPY a /a" || s[0].EmptyLayer || s[0].LayerSize <= 0 || s[0].Location.Line != 2 {
		t.Errorf("step 0 = %+v", s[0])
	}
	if s[1].Instruction != "ENV X=1" || !s[1].EmptyLayer || s[1].Location.Line != 3 {
		t.Errorf("step 1 = %+v", s[1])
	}
}

func TestBuildReproducible(t *testing.T) {
	t.Parallel()
	fx := fixture{dockerfile: "FROM base\nWORKDIR /srv\nCOPY . /srv/\nUSER app\n", files: map[string]string{"a": "A", "d/b": "B"}}
	var digests []v1.Hash
	for range 2 {
		res, _, err := build(t, fx, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := res.Image.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("digests differ: %v", digests)
	}
}

func TestBuildMultiStage(t *testing.T) {
	t.Parallel()
	dockerfileText := `FROM base AS builder
COPY a /out/a
ONBUILD ENV FROM_TRIGGER=1

FROM unused-image AS unused
COPY a /a

FROM builder AS child
ENV CHILD=1

FROM scratch AS final
COPY --from=child /out/a /a
COPY --from=0 /etc/passwd /passwd
`
	tests := []struct {
		name      string
		target    string
		wantAsked []string
		wantBuilt []string
		history   []string
		onbuild   []string
	}{
		{"last stage", "", []string{"base"}, []string{"builder", "child", "final"}, []string{"COPY /out/a /a # buildkit!", "COPY /etc/passwd /passwd # buildkit!"}, nil},
		{"intermediate target", "child", []string{"base"}, []string{"builder", "child"}, []string{"COPY a /out/a # buildkit!", "ENV FROM_TRIGGER=1", "ENV CHILD=1"}, nil},
		{"target by other case", "BUILDER", []string{"base"}, []string{"builder"}, []string{"COPY a /out/a # buildkit!"}, []string{"ENV FROM_TRIGGER=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := &memSource{images: map[string]v1.Image{"base": baseImage(t, nil, nil), "unused-image": baseImage(t, nil, nil)}}
			fx := fixture{dockerfile: dockerfileText, files: map[string]string{"a": "A"}, req: func(r *Request) { r.Target = tt.target }}
			res, cf, err := build(t, fx, src)
			if err != nil {
				t.Fatal(err)
			}
			if got := src.requested(); !reflect.DeepEqual(got, tt.wantAsked) {
				t.Errorf("requested images %q, want %q", got, tt.wantAsked)
			}
			var built []string
			for _, s := range res.Stages {
				built = append(built, s.Name)
			}
			if !reflect.DeepEqual(built, tt.wantBuilt) {
				t.Errorf("built %q, want %q", built, tt.wantBuilt)
			}
			if got := newHistory(cf); !reflect.DeepEqual(got, tt.history) {
				t.Errorf("history:\n got %q\nwant %q", got, tt.history)
			}
			if !reflect.DeepEqual(cf.Config.OnBuild, tt.onbuild) {
				t.Errorf("OnBuild = %q, want %q", cf.Config.OnBuild, tt.onbuild)
			}
		})
	}
}

func TestBuildOnBuildTriggers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		triggers []string
		history  []string
		wantErr  string
	}{
		{"copy and env", []string{"COPY a /trig", "ENV T=1"}, []string{"COPY a /trig # buildkit!", "ENV T=1", "ENV AFTER=1"}, ""},
		{"run trigger", []string{"RUN --mount=type=secret,id=x,required make"}, nil, "Dockerfile:2: secret x not provided (--secret id=x,...)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := baseImage(t, nil, func(c *v1.Config) { c.OnBuild = tt.triggers })
			src := &memSource{images: map[string]v1.Image{"base": base}}
			fx := fixture{dockerfile: "# comment\nFROM base\nENV AFTER=1\n", files: map[string]string{"a": "A"}}
			_, cf, err := build(t, fx, src)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := newHistory(cf); !reflect.DeepEqual(got, tt.history) {
				t.Errorf("history:\n got %q\nwant %q", got, tt.history)
			}
			if cf.Config.OnBuild != nil {
				t.Errorf("OnBuild = %q, want nil (not inherited)", cf.Config.OnBuild)
			}
		})
	}
	t.Run("recorded", func(t *testing.T) {
		t.Parallel()
		_, cf, err := build(t, fixture{dockerfile: "FROM scratch\nONBUILD COPY . /app\n"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"COPY . /app"}; !reflect.DeepEqual(cf.Config.OnBuild, want) {
			t.Errorf("OnBuild = %q, want %q", cf.Config.OnBuild, want)
		}
		if h := newHistory(cf); len(h) != 0 {
			t.Errorf("ONBUILD added history %q", h)
		}
	})
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fx   fixture
		want string // the whole message, or a prefix ending in "..."
	}{
		{"run without a shell", fixture{dockerfile: "FROM scratch\n\nRUN echo\n"}, "Dockerfile:3: running /bin/sh -c echo: ..."},
		{"run secret mount", fixture{dockerfile: "FROM scratch\n\nRUN --mount=type=secret,id=x,required=true echo\n"}, "Dockerfile:3: secret x not provided (--secret id=x,...)"},
		{"run in an unneeded stage", fixture{dockerfile: "FROM scratch AS a\nRUN x\nFROM nothere\n"}, "Dockerfile:3: resolving base image nothere: MANIFEST_UNKNOWN: nothere not found"},
		{"unknown instruction", fixture{dockerfile: "FROM scratch\nFOO bar\n"}, "Dockerfile:2: unknown instruction: FOO..."},
		{"bad flag", fixture{dockerfile: "FROM scratch\nCOPY --nope=1 a /\n"}, "Dockerfile:2: unknown flag: --nope..."},
		{"missing base", fixture{dockerfile: "FROM scratch\nFROM nothere:1\n"}, "Dockerfile:2: resolving base image nothere:1: MANIFEST_UNKNOWN: nothere:1 not found"},
		{"unknown target", fixture{dockerfile: "FROM scratch AS a\nFROM scratch AS b\n", req: func(r *Request) { r.Target = "c" }}, `resolving build target: unknown target stage "c" (stages: a, b)`},
		{"bad stage index", fixture{dockerfile: "FROM scratch\nCOPY --from=3 /a /a\n"}, "Dockerfile:2: invalid stage index 3"},
		{"copy from later stage", fixture{dockerfile: "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\n", req: func(r *Request) { r.Target = "a" }}, `Dockerfile:2: cannot copy from stage "b", it needs to be defined before current stage "a"`},
		{"missing copy source", fixture{dockerfile: "FROM scratch\nCOPY nothere /x\n"}, "Dockerfile:2: ..."},
		{"missing copy image", fixture{dockerfile: "FROM scratch\nCOPY --from=img:1 /a /a\n"}, "Dockerfile:2: resolving image img:1: ..."},
		{"bad chmod", fixture{dockerfile: "FROM scratch\nCOPY --chmod=99999 a /a\n", files: map[string]string{"a": "A"}}, "Dockerfile:2: invalid chmod parameter: '99999'. it should be octal string and between 0 and 07777"},
		{"bad stopsignal", fixture{dockerfile: "FROM scratch\nSTOPSIGNAL NOPE\n"}, "Dockerfile:2: Invalid signal: NOPE"},
		{"bad expose", fixture{dockerfile: "FROM scratch\nEXPOSE 80/xyz\n"}, `Dockerfile:2: invalid port: "80/xyz": invalid proto: xyz`},
		{"blank base", fixture{dockerfile: "ARG B\nFROM $B\n"}, "Dockerfile:2: base name ($B) should not be blank"},
		{"empty", fixture{dockerfile: "\n"}, "Dockerfile: the Dockerfile cannot be empty"},
		{"syntax error", fixture{dockerfile: "FROM scratch\nENV\n"}, "Dockerfile:2: ENV requires at least one argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := build(t, tt.fx, nil)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if prefix, ok := strings.CutSuffix(tt.want, "..."); ok {
				if !strings.HasPrefix(err.Error(), prefix) {
					t.Errorf("error %q, want prefix %q", err, prefix)
				}
			} else if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			var dfErr *dockerfile.Error
			if strings.HasPrefix(tt.want, "Dockerfile") && !errors.As(err, &dfErr) {
				t.Errorf("error %T is not a *dockerfile.Error", err)
			}
		})
	}
}

func TestBuildNeverReadsBaseLayers(t *testing.T) {
	t.Parallel()
	var reads atomic.Int64
	base := baseImage(t, &reads, nil)
	src := &memSource{images: map[string]v1.Image{"base": base}}
	fx := fixture{
		dockerfile: "FROM base\nENV APP=1\nCOPY app.py req.txt /app/\nUSER 1000\nCMD [\"python\", \"/app/app.py\"]\n",
		files:      map[string]string{"app.py": "print(1)\n", "req.txt": "x==1\n"},
	}
	res, _, err := build(t, fx, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.Image.Digest(); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Image.RawManifest(); err != nil {
		t.Fatal(err)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("base layer content read %d times, want 0", n)
	}
}

func TestBuildChown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		chown    string
		uid, gid int
	}{
		{"name", "app", 1000, 1001},
		{"name and group", "app:staff", 1000, 50},
		{"numeric", "12:34", 12, 34},
		{"numeric user only", "12", 12, 12},
		{"unknown name is root as in BuildKit", "nobody", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := fixture{dockerfile: "FROM base\nCOPY --chown=" + tt.chown + " a /a\n", files: map[string]string{"a": "A"}}
			res, _, err := build(t, fx, nil)
			if err != nil {
				t.Fatal(err)
			}
			h := lastLayerHeader(t, res.Image, "a")
			if h.Uid != tt.uid || h.Gid != tt.gid {
				t.Errorf("owner %d:%d, want %d:%d", h.Uid, h.Gid, tt.uid, tt.gid)
			}
		})
	}
}

func TestBuildWorkdirLayer(t *testing.T) {
	t.Parallel()
	fx := fixture{dockerfile: "FROM base\nUSER app\nWORKDIR /etc/x/y\n"}
	res, _, err := build(t, fx, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, h := range layerHeaders(t, res.Image, -1) {
		got[h.Name] = fmt.Sprintf("%o %d:%d", h.Mode&0o7777, h.Uid, h.Gid)
	}
	want := map[string]string{"etc/": "755 0:0", "etc/x/": "755 1000:1001", "etc/x/y/": "755 1000:1001"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layer = %v, want %v", got, want)
	}
}

func layerHeaders(t *testing.T, img v1.Image, idx int) []*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if idx < 0 {
		idx = len(layers) + idx
	}
	rc, err := layers[idx].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []*tar.Header
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
}

func lastLayerHeader(t *testing.T, img v1.Image, name string) *tar.Header {
	t.Helper()
	for _, h := range layerHeaders(t, img, -1) {
		if strings.TrimSuffix(h.Name, "/") == name {
			return h
		}
	}
	t.Fatalf("%s not in the last layer", name)
	return nil
}

func TestBuildPlatforms(t *testing.T) {
	t.Parallel()
	const digestRef = "base@sha256:0000000000000000000000000000000000000000000000000000000000000000"
	tests := []struct {
		name       string
		dockerfile string
		platform   v1.Platform
		asked      []string
		os, arch   string
		variant    string
	}{
		{"request platform", "FROM base\n", v1.Platform{OS: "linux", Architecture: "arm64"}, []string{"base linux/arm64"}, "linux", "arm64", ""},
		{"from --platform", "FROM --platform=linux/arm/v7 base\n", v1.Platform{OS: "linux", Architecture: "amd64"}, []string{"base linux/arm/v7"}, "linux", "amd64", ""},
		{"from --platform with build platform arg", "FROM --platform=$BUILDPLATFORM base AS b\nFROM scratch\nCOPY --from=b /etc/group /g\n", v1.Platform{OS: "linux", Architecture: "s390x"}, []string{"base " + dockerfile.FormatPlatform(dockerfile.HostPlatform())}, "linux", "s390x", ""},
		{"digest ref", "FROM " + digestRef + "\n", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, []string{digestRef + " linux/arm/v6"}, "linux", "arm", "v6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := &memSource{images: map[string]v1.Image{"base": baseImage(t, nil, nil), digestRef: baseImage(t, nil, nil)}}
			fx := fixture{dockerfile: tt.dockerfile, req: func(r *Request) { r.Platform = tt.platform }}
			_, cf, err := build(t, fx, src)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(src.platforms, tt.asked) {
				t.Errorf("asked %q, want %q", src.platforms, tt.asked)
			}
			if cf.OS != tt.os || cf.Architecture != tt.arch || cf.Variant != tt.variant {
				t.Errorf("config platform %s/%s/%s, want %s/%s/%s", cf.OS, cf.Architecture, cf.Variant, tt.os, tt.arch, tt.variant)
			}
		})
	}
}

func TestDestMayCrossSymlink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, dest, workdir string
		want                bool
	}{
		{"bin dir", "/bin/", "/", true},
		{"lib64 file", "/lib64/x.so", "/", true},
		{"relative under bin", "tool", "/bin", true},
		{"var run", "/var/run/app.pid", "/", true},
		{"var lib", "/var/lib/app", "/", false},
		{"app", "/app/", "/", false},
		{"usr local bin", "/usr/local/bin/x", "/", false},
		{"binary name prefix", "/binaries/x", "/", false},
		{"dot in app", ".", "/app", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := destMayCrossSymlink(tc.dest, tc.workdir); got != tc.want {
				t.Fatalf("destMayCrossSymlink(%q, %q) = %v, want %v", tc.dest, tc.workdir, got, tc.want)
			}
		})
	}
}

func TestBuildReadsBaseLayersOnlyWhenNeeded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		dockerfile string
		history    string // CreatedBy of the base's layer; "" keeps "base layer"
		wantReads  bool
	}{
		{"workdir outside FHS", "FROM base\nWORKDIR /app\nCOPY a ./\n", "", false},
		{"copy into new top dir", "FROM base\nCOPY a /srvapp/a\n", "", false},
		{"chown by number", "FROM base\nCOPY --chown=1000:1000 a /app/\n", "", false},
		{"workdir under FHS dir", "FROM base\nWORKDIR /srv/app\n", "", true},
		{"chown by name reads passwd", "FROM base\nCOPY --chown=app a /app/\n", "", true},
		{"base history mentions the dir", "FROM base\nWORKDIR /app\n", "WORKDIR /app", true},
		{"copy to merged-usr bin", "FROM base\nCOPY a /bin/\n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var reads atomic.Int64
			base := baseImage(t, &reads, nil)
			if tt.history != "" {
				cf, err := base.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				cf = cf.DeepCopy()
				cf.History[0].CreatedBy = tt.history
				if base, err = mutate.ConfigFile(base, cf); err != nil {
					t.Fatal(err)
				}
			}
			src := &memSource{images: map[string]v1.Image{"base": base}}
			fx := fixture{dockerfile: tt.dockerfile, files: map[string]string{"a": "A"}}
			res, _, err := build(t, fx, src)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := res.Image.Digest(); err != nil {
				t.Fatal(err)
			}
			if got := reads.Load() > 0; got != tt.wantReads {
				t.Errorf("base layers read: %v (%d reads), want %v", got, reads.Load(), tt.wantReads)
			}
		})
	}
}

// A remote base image reads its layers lazily with the context it was
// resolved with, after Build returns (writing a layout, pushing): Build must
// not resolve it with a context it cancels itself.
func TestBuildResolvesBasesWithCallersContext(t *testing.T) {
	t.Parallel()
	src := &memSource{images: map[string]v1.Image{"base": baseImage(t, nil, nil)}}
	fx := fixture{
		dockerfile: "FROM base AS one\nCOPY a /a\nFROM base\nCOPY --from=one /a /b\n",
		files:      map[string]string{"a": "A"},
	}
	if _, _, err := build(t, fx, src); err != nil {
		t.Fatal(err)
	}
	if len(src.ctxs) == 0 {
		t.Fatal("no base image was resolved")
	}
	for i, ctx := range src.ctxs {
		if err := ctx.Err(); err != nil {
			t.Errorf("base image %d was resolved with a context that is now %v", i, err)
		}
	}
}

func TestBuildWorkdirOwnedByUser(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, user string
		uid, gid   int
	}{
		{"by name", "app", 1000, 1001},
		{"by name and group", "app:staff", 1000, 50},
		{"numeric", "1234", 1234, 1234},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fx := fixture{dockerfile: "FROM base\nUSER " + tc.user + "\nWORKDIR /owned/by/user\n"}
			res, _, err := build(t, fx, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"owned", "owned/by", "owned/by/user"} {
				h := lastLayerHeader(t, res.Image, p)
				if h.Uid != tc.uid || h.Gid != tc.gid {
					t.Errorf("/%s owned by %d:%d, want %d:%d", p, h.Uid, h.Gid, tc.uid, tc.gid)
				}
			}
		})
	}
}

func TestBuildStepInstructionText(t *testing.T) {
	t.Parallel()
	fx := fixture{
		dockerfile: "FROM scratch\nARG DIR=/srv\nLABEL a=\"1\" \\\n      b=\"2\"\nCOPY f $DIR/\nCMD [\"python\", \"-m\", \"app\"]\nENTRYPOINT echo \"$DIR\"\n",
		files:      map[string]string{"f": "F"},
	}
	res, _, err := build(t, fx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range res.Stages[len(res.Stages)-1].Steps {
		got = append(got, s.Instruction)
	}
	want := []string{
		"ARG DIR=/srv",
		`LABEL a="1" b="2"`,
		"COPY f /srv/",
		`CMD ["python", "-m", "app"]`,
		`ENTRYPOINT echo "$DIR"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("step texts:\n got %q\nwant %q", got, want)
	}
}

func TestBuildWarnsAboutUnknownChownNames(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	src := &memSource{images: map[string]v1.Image{"base": baseImage(t, nil, nil)}}
	fx := fixture{dockerfile: "FROM base\nCOPY --chown=ghost:nogroup a /a\nCOPY --chown=app a /b\n", files: map[string]string{"a": "A"}}
	if _, err := Build(context.Background(), fx.request(t), WithImageSource(src), WithLogger(logger)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Dockerfile:2: --chown=ghost:nogroup: user ghost not found",
		"Dockerfile:2: --chown=ghost:nogroup: group nogroup not found",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), "--chown=app") {
		t.Errorf("a known user was warned about:\n%s", logs.String())
	}
}

// TestLayerHook: the hook sees exactly the layers the returned image adds
// (the target stage's and those of the stages it is built on), none of a
// stage only copied from.
func TestLayerHook(t *testing.T) {
	t.Parallel()
	df := "FROM scratch AS other\nCOPY a /a\nFROM scratch AS base\nCOPY b /b\nFROM base\nCOPY --from=other /a /a2\nCOPY c /c\n"
	var mu sync.Mutex
	var streams []v1.Layer
	hook := func(l v1.Layer) {
		mu.Lock()
		streams = append(streams, l)
		mu.Unlock()
	}
	f := fixture{dockerfile: df, files: map[string]string{"a": "a", "b": "b", "c": "c"}}
	res, err := Build(context.Background(), f.request(t), WithLayerHook(hook))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := res.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	// The streams ended when the layers were written: their digests are
	// known now.
	var got []string
	for _, l := range streams {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.String())
	}
	var want []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, d.String())
	}
	if len(want) != 3 || !slices.Equal(got, want) {
		t.Errorf("hook saw %v, want the image's layers %v", got, want)
	}
}
