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
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/intesys/ship-action/internal/dockerfile"
	"github.com/intesys/ship-action/internal/sandbox"
	"github.com/intesys/ship-action/internal/testbed"
)

// requireRoot skips RUN tests where chroot is not permitted; under CI=true
// (where .ci/run runs as root) it fails instead.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("RUN needs root (chroot) and CI=true runs as root")
	}
	t.Skip("RUN needs root (chroot)")
}

// runBuild builds f on the hermetic busybox image ("busybox") with a
// cache dir of its own, and returns the result, the config and the logs.
func runBuild(t *testing.T, f fixture, opts ...Option) (*Result, *v1.ConfigFile, string, error) {
	t.Helper()
	src := &memSource{images: map[string]v1.Image{"busybox": testbed.BusyboxImage(t)}}
	var logs bytes.Buffer
	cache := t.TempDir()
	opts = append([]Option{WithImageSource(src), WithCacheDir(cache),
		WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	res, err := Build(context.Background(), f.request(t), opts...)
	if err != nil {
		return nil, nil, logs.String(), err
	}
	cf, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, cache); len(m) > 0 {
		t.Errorf("the build left mounts: %v", m)
	}
	// Nothing but cache mounts and cached base root file systems may stay
	// in the cache dir.
	ents, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "cache" && e.Name() != rootfsCacheDir {
			t.Errorf("cache dir keeps %s after the build", e.Name())
		}
	}
	return res, cf, logs.String(), nil
}

// flatten returns the image's file system: path → entry summary; regular
// files as "file MODE UID:GID content".
func flatten(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		s := ""
		switch h.Typeflag {
		case tar.TypeDir:
			s = "dir"
		case tar.TypeSymlink:
			s = "symlink " + h.Linkname
		case tar.TypeLink:
			s = "hardlink " + h.Linkname
		default:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			s = "file " + strings.TrimSpace(string(b))
		}
		out[name] = fmt.Sprintf("%s %05o %d:%d", s, h.Mode&0o7777, h.Uid, h.Gid)
	}
}

// lastLayer returns the entries of the image's last layer.
func lastLayer(t *testing.T, img v1.Image) []string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
}

func TestRunFiles(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	tests := []struct {
		name       string
		dockerfile string
		files      map[string]string
		buildArgs  map[string]string
		want       map[string]string // path → flattened entry ("" : absent)
		history    []string          // the new history entries, when set
		layer      []string          // the entries of the last layer, when set
	}{
		{name: "create modify delete",
			dockerfile: "FROM busybox\nRUN echo new > /new.txt && echo more >> /etc/passwd && rm /etc/group && mkdir -p /d/e\n",
			want: map[string]string{"new.txt": "file new 00644 0:0", "etc/group": "", "d/e": "dir 00755 0:0",
				"etc/passwd": "file " + strings.TrimSpace(testbed.DefaultPasswd) + "\nmore 00644 0:0"},
			history: []string{"RUN /bin/sh -c echo new > /new.txt && echo more >> /etc/passwd && rm /etc/group && mkdir -p /d/e # buildkit!"},
			layer:   []string{"d/", "d/e/", "dev/", "etc/", "etc/.wh.group", "etc/passwd", "new.txt", "proc/", "sys/"}},
		{name: "chmod chown",
			dockerfile: "FROM busybox\nRUN echo x > /f && chown 1000:50 /f && chmod 4750 /f && chown app /home/app\n",
			want:       map[string]string{"f": "file x 04750 1000:50"},
			// The image lacks the mount points: created as with runc.
			layer: []string{"dev/", "f", "proc/", "sys/"}},
		{name: "user by name and id",
			dockerfile: "FROM busybox\nUSER app\nRUN id > /tmp/id-app\nUSER 1234\nRUN id -u > /tmp/id-num; id -g >> /tmp/id-num\nUSER 1000:50\nRUN id > /tmp/id-pair\nUSER root\nRUN echo $HOME > /tmp/home-root\nUSER app\nRUN echo $HOME > /tmp/home-app\n",
			want: map[string]string{
				"tmp/id-app":    "file uid=1000(app) gid=1000(app) groups=50(staff),1000(app) 00644 1000:1000",
				"tmp/id-num":    "file 1234\n0 00644 1234:0",
				"tmp/id-pair":   "file uid=1000(app) gid=50(staff) groups=50(staff) 00644 1000:50",
				"tmp/home-root": "file /root 00644 0:0",
				"tmp/home-app":  "file /home/app 00644 1000:1000",
			}},
		{name: "workdir", dockerfile: "FROM busybox\nWORKDIR /w/x\nRUN pwd > here\n",
			want: map[string]string{"w/x/here": "file /w/x 00644 0:0"}},
		{name: "env and build args",
			dockerfile: "FROM busybox\nARG A=default\nARG B\nARG C\nENV E=env\nRUN echo \"$A $B $C $E\" > /vars\n",
			buildArgs:  map[string]string{"B": "fromflag"},
			want:       map[string]string{"vars": "file default fromflag  env 00644 0:0"},
			history:    []string{"ARG A=default", "ARG B=fromflag", "ARG C", "ENV E=env", "RUN |3 A=default B=fromflag C= /bin/sh -c echo \"$A $B $C $E\" > /vars # buildkit!"}},
		{name: "shell change and exec form",
			dockerfile: "FROM busybox\nSHELL [\"/bin/sh\", \"-xc\"]\nRUN echo $0 > /shell\nRUN [\"/bin/sh\", \"-c\", \"echo exec > /exec\"]\n",
			want:       map[string]string{"shell": "file /bin/sh 00644 0:0", "exec": "file exec 00644 0:0"},
			history:    []string{"SHELL [/bin/sh -xc]", "RUN /bin/sh -xc echo $0 > /shell # buildkit!", "RUN /bin/sh -c echo exec > /exec # buildkit!"}},
		{name: "heredocs",
			dockerfile: "FROM busybox\nRUN <<EOF\necho one > /one\necho two > /two\nEOF\nRUN <<EOF\n#!/bin/sh\necho $0 > /script\nEOF\nRUN <<-EOT\n\techo tab > /tab\n\tEOT\nRUN cat <<A > /a && cat <<B > /b\nalpha\nA\nbeta\nB\n",
			want: map[string]string{"one": "file one 00644 0:0", "two": "file two 00644 0:0",
				"script": "file /dev/pipes/EOF 00644 0:0", "tab": "file tab 00644 0:0",
				"a": "file alpha 00644 0:0", "b": "file beta 00644 0:0", "dev/pipes": ""},
			history: []string{"RUN /bin/sh -c echo one > /one\necho two > /two\n # buildkit!",
				"RUN /bin/sh -c /dev/pipes/EOF # buildkit!",
				"RUN /bin/sh -c echo tab > /tab\n # buildkit!",
				"RUN /bin/sh -c cat <<A > /a && cat <<B > /b\nalpha\nA\nbeta\nB # buildkit!"}},
		{name: "copy after run and run after copy", files: map[string]string{"in.txt": "from context\n"},
			dockerfile: "FROM busybox\nRUN mkdir /data && echo run > /data/run.txt\nCOPY in.txt /data/\nRUN cat /data/in.txt /data/run.txt > /data/both && rm /data/run.txt\n",
			want:       map[string]string{"data/both": "file from context\nrun 00644 0:0", "data/run.txt": "", "data/in.txt": "file from context 00644 0:0"},
			layer:      []string{"data/", "data/.wh.run.txt", "data/both"}},
		{name: "multi-stage copy from a stage that ran",
			dockerfile: "FROM busybox AS build\nRUN echo built > /out\nFROM busybox AS child\nRUN echo child > /child\nFROM build\nRUN cat /out > /again\nFROM scratch\nCOPY --from=2 /again /out /\n",
			want:       map[string]string{"again": "file built 00644 0:0", "out": "file built 00644 0:0"}},
		{name: "args of a base stage",
			dockerfile: "FROM busybox AS one\nARG V=1\nFROM one\nRUN echo \"v=$V\" > /v\n",
			want:       map[string]string{"v": "file v=1 00644 0:0"},
			history:    []string{"ARG V=1", "RUN |1 V=1 /bin/sh -c echo \"v=$V\" > /v # buildkit!"}},
		{name: "empty run", dockerfile: "FROM busybox\nRUN true\nRUN true\n", want: map[string]string{},
			history: []string{"RUN /bin/sh -c true # buildkit!", "RUN /bin/sh -c true # buildkit!"}, layer: []string{}},
		{name: "dir replaced by symlink and back",
			dockerfile: "FROM busybox\nRUN mkdir -p /x/y && echo in > /x/y/f\nRUN rm -rf /x && ln -s /tmp /x\nRUN rm /x && mkdir /x && echo again > /x/g\n",
			// ggcr's mutate.Extract (flatten) does not let the symlink of
			// layer 3 hide x/y of layer 2 as overlayfs does: check the layer.
			want:  map[string]string{"x": "dir 00755 0:0", "x/g": "file again 00644 0:0"},
			layer: []string{"x/", "x/g"}},
	}
	// Each case on overlay mounts (the default as root) and on a copy of
	// the base with walks for the snapshot (as without CAP_SYS_ADMIN).
	modes := []struct {
		name string
		opts []Option
	}{{"overlay", nil}, {"copy", []Option{WithoutOverlay()}}}
	for _, tt := range tests {
		for _, mode := range modes {
			t.Run(tt.name+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				fx := fixture{dockerfile: tt.dockerfile, files: tt.files, req: func(r *Request) { r.BuildArgs = tt.buildArgs }}
				res, cf, logs, err := runBuild(t, fx, mode.opts...)
				if want := mode.opts == nil; strings.Contains(logs, "RUN works on overlay mounts") != want {
					t.Errorf("overlay used: %v, want %v\nlogs:\n%s", !want, want, logs)
				}
				if err != nil {
					t.Fatalf("build: %v\nlogs:\n%s", err, logs)
				}
				got := flatten(t, res.Image)
				for p, want := range tt.want {
					if got[p] != want {
						t.Errorf("%s = %q, want %q", p, got[p], want)
					}
				}
				if tt.history != nil {
					h := newHistory(cf)
					if !reflect.DeepEqual(h, tt.history) {
						t.Errorf("history:\n got %q\nwant %q", h, tt.history)
					}
				}
				if tt.layer != nil {
					l := lastLayer(t, res.Image)
					if len(l) == 0 {
						l = []string{}
					}
					if !reflect.DeepEqual(l, tt.layer) {
						t.Errorf("last layer: got %q, want %q", l, tt.layer)
					}
				}
				for _, k := range []string{"A", "B", "C"} {
					for _, e := range cf.Config.Env {
						if strings.HasPrefix(e, k+"=") {
							t.Errorf("build arg persisted in the config: %s", e)
						}
					}
				}
				for p := range got {
					if strings.HasPrefix(p, "proc/") || strings.HasPrefix(p, "sys/") || strings.HasPrefix(p, "dev/") || p == "etc/resolv.conf" || p == "etc/hosts" {
						t.Errorf("sandbox path %s is in the image", p)
					}
				}
			})
		}
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	tests := []struct {
		name       string
		dockerfile string
		want       string
		logs       []string
	}{
		{"exit code", "FROM busybox\nENV A=1\n\nRUN echo first; echo last words; exit 3\n",
			"Dockerfile:4: RUN exited with 3 (last output line: last words)", []string{"first", "last words"}},
		{"no output", "FROM busybox\nRUN exit 7\n", "Dockerfile:2: RUN exited with 7", nil},
		{"unknown user", "FROM busybox\nUSER ghost\nRUN true\n", "Dockerfile:3: unable to find user ghost: no matching entries in passwd file", nil},
		{"missing program", "FROM busybox\nRUN [\"/nothere\"]\n", "Dockerfile:2: running /nothere: ...", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, logs, err := runBuild(t, fixture{dockerfile: tt.dockerfile})
			if err == nil {
				t.Fatal("no error")
			}
			if prefix, ok := strings.CutSuffix(tt.want, "..."); ok {
				if !strings.HasPrefix(err.Error(), prefix) {
					t.Errorf("error %q, want prefix %q", err, prefix)
				}
			} else if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			var dfErr *dockerfile.Error
			if !errors.As(err, &dfErr) {
				t.Errorf("error %T is not a *dockerfile.Error", err)
			}
			for _, l := range tt.logs {
				if !strings.Contains(logs, l) {
					t.Errorf("logs lack %q:\n%s", l, logs)
				}
			}
		})
	}
}

func TestRunCacheMount(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	cache := t.TempDir()
	df := "FROM busybox\nRUN --mount=type=cache,target=/var/cache/x sh -c 'n=$(cat /var/cache/x/n 2>/dev/null || echo 0); echo $((n+1)) > /var/cache/x/n; cp /var/cache/x/n /seen'\n"
	for i, want := range []string{"1", "2"} {
		src := &memSource{images: map[string]v1.Image{"busybox": testbed.BusyboxImage(t)}}
		res, err := Build(context.Background(), fixture{dockerfile: df}.request(t), WithImageSource(src), WithCacheDir(cache))
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		got := flatten(t, res.Image)
		if got["seen"] != "file "+want+" 00644 0:0" {
			t.Errorf("build %d: /seen = %q, want %s", i, got["seen"], want)
		}
		for p := range got {
			if strings.HasPrefix(p, "var/cache/x/") {
				t.Errorf("build %d: cache content %s in the image", i, p)
			}
		}
	}
}

func TestRunBindMount(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	df := "FROM busybox AS src\nRUN echo from-stage > /s.txt\nFROM busybox\n" +
		"RUN --mount=type=bind,source=ctx.txt,target=/m/ctx.txt --mount=type=bind,from=src,source=/s.txt,target=/m/s.txt cat /m/ctx.txt /m/s.txt > /both\n"
	res, _, logs, err := runBuild(t, fixture{dockerfile: df, files: map[string]string{"ctx.txt": "from-context\n"}})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, logs)
	}
	got := flatten(t, res.Image)
	if want := "file from-context\nfrom-stage 00644 0:0"; got["both"] != want {
		t.Errorf("/both = %q, want %q", got["both"], want)
	}
	if _, ok := got["m/ctx.txt"]; ok {
		t.Error("bind mount target in the image")
	}
}

func TestRunChrootMode(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	df := "FROM busybox\nUSER app\nWORKDIR /home/app/w\nRUN echo $(id -u) > f && ls /dev/null > dev\n"
	res, _, logs, err := runBuild(t, fixture{dockerfile: df}, withSandboxMode(sandbox.ModeChroot))
	if err != nil {
		t.Fatalf("build: %v\n%s", err, logs)
	}
	got := flatten(t, res.Image)
	if want := "file 1000 00644 1000:1000"; got["home/app/w/f"] != want {
		t.Errorf("f = %q, want %q", got["home/app/w/f"], want)
	}
	if !strings.Contains(logs, sandbox.ModeChroot.Describe()) {
		t.Errorf("sandbox mode not logged:\n%s", logs)
	}
	for p := range got {
		if p == "etc/resolv.conf" || p == "etc/hosts" || strings.HasPrefix(p, "dev/") {
			t.Errorf("sandbox path %s is in the image", p)
		}
	}
}

func TestRunTempDirsRemoved(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	// With a base cache, and without one (the base then in a tmpfs where
	// overlay mounts work: see memroot.go).
	for _, mode := range []struct {
		name string
		opts []Option
	}{{"base cache", nil}, {"no base cache", []Option{WithoutRootFSCache()}}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testRunTempDirsRemoved(t, mode.opts)
		})
	}
}

func testRunTempDirsRemoved(t *testing.T, opts []Option) {
	for _, df := range []string{"FROM busybox\nRUN echo ok > /ok\n", "FROM busybox\nRUN exit 1\n"} {
		cache := t.TempDir()
		src := &memSource{images: map[string]v1.Image{"busybox": testbed.BusyboxImage(t)}}
		_, _ = Build(context.Background(), fixture{dockerfile: df}.request(t), append([]Option{WithImageSource(src), WithCacheDir(cache)}, opts...)...)
		if left := leftovers(t, cache); len(left) != 0 {
			t.Errorf("%q: cache dir keeps %v", df, left)
		}
		if m := mountsUnder(t, cache); len(m) > 0 {
			t.Errorf("%q: the build left mounts: %v", df, m)
		}
	}
	// Cancellation.
	cache := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	src := &memSource{images: map[string]v1.Image{"busybox": testbed.BusyboxImage(t)}}
	req := fixture{dockerfile: "FROM busybox\nRUN touch /started-marker; sleep 30\n"}.request(t)
	done := make(chan error, 1)
	go func() {
		_, err := Build(ctx, req, append([]Option{WithImageSource(src), WithCacheDir(cache)}, opts...)...)
		done <- err
	}()
	for i := 0; i < 200; i++ {
		m, _ := filepath.Glob(filepath.Join(cache, "ship-build-*", "rootfs-*", "started-marker"))
		o, _ := filepath.Glob(filepath.Join(cache, "ship-build-*", "rootfs-*", "root", "started-marker"))
		if len(m)+len(o) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled build: err = %v, want context.Canceled", err)
	}
	if left := leftovers(t, cache); len(left) != 0 {
		t.Errorf("cancelled build: cache dir keeps %v", left)
	}
	if m := mountsUnder(t, cache); len(m) > 0 {
		t.Errorf("cancelled build: the build left mounts: %v", m)
	}
}

// mountsUnder returns the mount points under dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// leftovers lists what a build left in its cache dir besides complete
// entries of the base root file system cache (and their lock files).
func leftovers(t *testing.T, cache string) []string {
	t.Helper()
	ents, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != rootfsCacheDir {
			out = append(out, e.Name())
			continue
		}
		sub, err := os.ReadDir(filepath.Join(cache, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sub {
			if strings.HasPrefix(s.Name(), "tmp-") {
				out = append(out, filepath.Join(e.Name(), s.Name()))
			}
		}
	}
	return out
}

// TestRunStageReuse: a stage built on a stage that ran RUN starts from
// that stage's root file system (no layer extracted again), and COPY
// --from such a stage reads it, in both root file system modes.
func TestRunStageReuse(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	df := "FROM busybox AS one\nRUN echo 1 > /one && rm /etc/group\nFROM one AS two\nCOPY in.txt /in.txt\nRUN cat /one /in.txt > /two && test ! -e /etc/group\nFROM scratch\nCOPY --from=two /two /one /\n"
	for _, opts := range [][]Option{nil, {WithoutOverlay()}} {
		res, _, logs, err := runBuild(t, fixture{dockerfile: df, files: map[string]string{"in.txt": "in\n"}}, opts...)
		if err != nil {
			t.Fatalf("build: %v\nlogs:\n%s", err, logs)
		}
		got := flatten(t, res.Image)
		if got["two"] != "file 1\nin 00644 0:0" || got["one"] != "file 1 00644 0:0" {
			t.Errorf("files: two=%q one=%q", got["two"], got["one"])
		}
		if !strings.Contains(logs, `msg="root file system from the stage built on" stage=two from=one`) {
			t.Errorf("stage two did not start from stage one's root file system; logs:\n%s", logs)
		}
		// Only its own layer (the COPY) is applied.
		own := `msg="extracting root file system" stage=two layers=1`
		if strings.Count(logs, `msg="extracting root file system" stage=two`) != strings.Count(logs, own) || strings.Contains(logs, `msg="base root file system" stage=two`) {
			t.Errorf("stage two extracted stage one's layers again; logs:\n%s", logs)
		}
	}
}

// TestResultLayers: Result.Layers says what made each layer of the image.
func TestResultLayers(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	df := "FROM busybox AS base\nCOPY req.txt /app/requirements.txt\nFROM base\nRUN echo x > /x\nCOPY --from=base /app/requirements.txt /copy.txt\nCOPY dir/ /d/\n"
	files := map[string]string{"req.txt": "flask==0.1\n", "dir/a": "a", "dir/sub/b": "b"}
	res, cf, logs, err := runBuild(t, fixture{dockerfile: df, files: files})
	if err != nil {
		t.Fatalf("build: %v\nlogs:\n%s", err, logs)
	}
	base, err := testbed.BusyboxImage(t).Layers()
	if err != nil {
		t.Fatal(err)
	}
	nb := len(base)
	if len(res.Layers) != len(cf.RootFS.DiffIDs) || len(res.Layers) != nb+4 {
		t.Fatalf("%d layer infos, image has %d layers (base %d)", len(res.Layers), len(cf.RootFS.DiffIDs), nb)
	}
	for i, l := range res.Layers {
		if l.DiffID != cf.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: DiffID %v, config %v", i, l.DiffID, cf.RootFS.DiffIDs[i])
		}
		if (i < nb) != l.Base {
			t.Errorf("layer %d: Base = %v", i, l.Base)
		}
	}
	want := []struct {
		instr string
		line  int
		files map[string]string
	}{
		{"FROM busybox", 1, nil},
		{"COPY req.txt /app/requirements.txt", 2, map[string]string{"app/requirements.txt": "req.txt"}},
		{"RUN echo x > /x", 4, nil},
		{"COPY --from=base /app/requirements.txt /copy.txt", 5, nil},
		{"COPY dir/ /d/", 6, map[string]string{"d/a": "dir/a", "d/sub/b": "dir/sub/b"}},
	}
	got := append(res.Layers[nb-1:nb:nb], res.Layers[nb:]...)
	for i, w := range want {
		g := got[i]
		if g.Instruction != w.instr || g.Location.Line != w.line || !reflect.DeepEqual(g.ContextFiles, w.files) && len(w.files)+len(g.ContextFiles) > 0 {
			t.Errorf("layer info %d: %q at line %d, files %v; want %q at %d, files %v", i, g.Instruction, g.Location.Line, g.ContextFiles, w.instr, w.line, w.files)
		}
	}
}

// TestRunCacheMountSharing: two stages run at the same time with the same
// cache; private gives the second another instance, locked makes it wait.
func TestRunCacheMountSharing(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	stage := func(name, sharing string) string {
		return "FROM busybox AS " + name + "\nRUN --mount=type=cache,target=/c,sharing=" + sharing +
			" sh -c 'touch /c/" + name + "; sleep 1; ls /c | tr \"\\n\" \" \" > /seen'\n"
	}
	for _, sharing := range []string{"private", "locked"} {
		t.Run(sharing, func(t *testing.T) {
			t.Parallel()
			df := stage("a", sharing) + stage("b", sharing) + "FROM scratch\nCOPY --from=a /seen /a\nCOPY --from=b /seen /b\n"
			res, _, logs, err := runBuild(t, fixture{dockerfile: df})
			if err != nil {
				t.Fatalf("build: %v\nlogs:\n%s", err, logs)
			}
			got := flatten(t, res.Image)
			a, b := got["a"], got["b"]
			both := func(s string) bool { return strings.Contains(s, "file a b ") }
			switch sharing {
			case "private":
				if both(a) || both(b) {
					t.Errorf("private cache shared by concurrent RUNs: a saw %q, b saw %q", a, b)
				}
			case "locked":
				if both(a) == both(b) {
					t.Errorf("locked cache: exactly one RUN must see the other's file: a saw %q, b saw %q", a, b)
				}
			}
		})
	}
}
