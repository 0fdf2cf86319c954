package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/intesys/ship-action/internal/testbed"
)

// file is one entry of a build context (or of a tar made with tarOf).
type file struct {
	content string
	mode    int64 // permission and setuid/setgid/sticky bits; 0: 0644 for files, 0755 for dirs
	link    string
	dir     bool
	hard    string // path (in the same tree) this file is a hard link to
}

func txt(content string) file              { return file{content: content} }
func txtMode(content string, m int64) file { return file{content: content, mode: m} }
func symlink(target string) file           { return file{link: target} }
func dirMode(m int64) file                 { return file{dir: true, mode: m} }
func hardlink(to string) file              { return file{hard: to} }
func (f file) perm() int64 {
	switch {
	case f.mode != 0:
		return f.mode
	case f.dir:
		return 0o755
	default:
		return 0o644
	}
}

func osMode(m int64) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// writeTree creates files under dir. Parents not listed are 0755 dirs.
func writeTree(t testing.TB, dir string, files map[string]file) {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var dirs []string
	for _, n := range names {
		f := files[n]
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case f.dir:
			err = os.MkdirAll(p, 0o755)
			dirs = append(dirs, n)
		case f.link != "":
			err = os.Symlink(f.link, p)
		case f.hard != "":
			continue // below, once its target exists
		default:
			if err = os.WriteFile(p, []byte(f.content), 0o644); err == nil {
				err = os.Chmod(p, osMode(f.perm()))
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		if to := files[n].hard; to != "" {
			if err := os.Link(filepath.Join(dir, filepath.FromSlash(to)), filepath.Join(dir, filepath.FromSlash(n))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(filepath.Join(dir, dirs[i]), osMode(files[dirs[i]].perm())); err != nil {
			t.Fatal(err)
		}
	}
}

// tarOf returns a tar archive (gzip-compressed when gz) of files, owned by
// uid/gid 0 unless the name says otherwise, with a fixed mtime.
func tarOf(files map[string]file, gz bool) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	mtime := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, n := range names {
		f := files[n]
		h := &tar.Header{Name: n, Mode: f.perm(), ModTime: mtime, Uid: 1234, Gid: 5678}
		switch {
		case f.dir:
			h.Typeflag, h.Name = tar.TypeDir, n+"/"
		case f.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		case f.hard != "":
			h.Typeflag, h.Linkname = tar.TypeLink, f.hard
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.content))
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if _, err := io.WriteString(tw, f.content); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			panic(err)
		}
	}
	return buf.String()
}

// env is the test bed of one top-level test: a registry holding the base
// images, a docker client, and an HTTP server for ADD <url>.
type env struct {
	reg    *testbed.Registry
	docker *testbed.DockerClient
	http   string // base URL of the file server, no trailing slash
	// busyboxDigest is the digest of base/busybox:1.
	busyboxDigest string
}

// httpFiles is what the file server serves (GET /NAME).
func httpFiles() map[string]string {
	return map[string]string{
		"remote.txt":  "fetched over http\n",
		"archive.tar": tarOf(map[string]file{"x/y.txt": txt("not extracted\n")}, false),
	}
}

// Base image repositories every env has.
const (
	baseBusybox  = "base/busybox:1"  // testbed.BusyboxImage
	baseBusybox2 = "base/busybox2:1" // the same with app as 2000:3000
	baseOnbuild  = "base/onbuild:1"  // built by docker: busybox + ONBUILD triggers
	baseLinks    = "base/links:1"    // busybox + merged-/usr style directory symlinks
)

// withSymlinkedDirs adds a layer to img with directory symlinks as Debian
// has them (lib -> usr/lib, var/run -> /run) and a setgid directory.
func withSymlinkedDirs(t testing.TB, img v1.Image) v1.Image {
	t.Helper()
	data := tarOf(map[string]file{
		"usr/lib":      dirMode(0o755),
		"usr/lib/keep": txt("keep\n"),
		"lib":          symlink("usr/lib"),
		"run":          dirMode(0o755),
		"var/run":      symlink("/run"),
		"srv":          dirMode(0o2775),
		"opt":          dirMode(0o750),
		"opt/hard-a":   txt("shared\n"),
		"opt/hard-b":   hardlink("opt/hard-a"),
	}, false)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "ADD links.tar / # testbed"}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// otherPasswd and otherGroup make base/busybox2: the same names as the
// default image, other ids.
const (
	otherPasswd = "root:x:0:0:root:/root:/bin/sh\napp:x:2000:3000:app:/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
	otherGroup  = "root:x:0:\napp:x:3000:\nstaff:x:60:\nnogroup:x:65534:\n"
)

// onbuildDockerfile makes base/onbuild with docker.
const onbuildDockerfile = `FROM {{REG}}/base/busybox:1
LABEL role=onbuild-base
ONBUILD COPY . /onbuild/
ONBUILD ENV ONBUILT=yes
ONBUILD WORKDIR /onbuild
`

// newEnv starts a registry and a file server and pushes the base images.
// withOnbuild also builds base/onbuild with docker.
func newEnv(t *testing.T, withOnbuild bool) *env {
	t.Helper()
	d := testbed.Docker(t)
	reg := testbed.StartRegistry(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := httpFiles()[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, r.URL.Path, time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC), strings.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	e := &env{reg: reg, docker: d, http: srv.URL}
	e.busyboxDigest = testbed.PushImage(t, testbed.BusyboxImage(t), reg.Ref(baseBusybox)).String()
	testbed.PushImage(t, withSymlinkedDirs(t, testbed.BusyboxImage(t)), reg.Ref(baseLinks))
	testbed.PushImage(t, testbed.BusyboxImage(t, testbed.WithPasswd(otherPasswd, otherGroup)), reg.Ref(baseBusybox2))
	if withOnbuild {
		dir := t.TempDir()
		writeTree(t, dir, map[string]file{"Dockerfile": txt(e.expand(onbuildDockerfile))})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		tag := reg.Ref(baseOnbuild)
		if err := d.Build(ctx, dir, filepath.Join(dir, "Dockerfile"), tag); err != nil {
			t.Fatal(err)
		}
		if err := d.Push(ctx, tag); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.RemoveImages(context.Background(), tag) })
	}
	return e
}

// expand replaces {{REG}}, {{HTTP}} and {{BUSYBOX_DIGEST}} in s.
func (e *env) expand(s string) string {
	return strings.NewReplacer("{{REG}}", e.reg.Host, "{{HTTP}}", e.http, "{{BUSYBOX_DIGEST}}", e.busyboxDigest).Replace(s)
}

// diffCase is one differential test: a build context and a Dockerfile
// built by BuildKit and by ship.
type diffCase struct {
	name       string
	files      map[string]file // the context; the Dockerfile is added unless listed
	dockerfile string          // {{REG}} and {{HTTP}} are replaced
	path       string          // the Dockerfile's path in the context; default "Dockerfile"
	target     string
	buildArgs  []string // K=V
	// legacy lists differences (exact lines of the report) that come from
	// Docker 20.10's frontend being older than the BuildKit ship follows.
	legacy []string
}

func (c diffCase) dockerfilePath() string {
	if c.path == "" {
		return "Dockerfile"
	}
	return c.path
}

// tagName turns a case name into a repository path component.
func tagName(s string) string {
	return strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// prepare writes the case's context into a new temp dir and returns it and
// the Dockerfile's absolute path.
func (e *env) prepare(t *testing.T, c diffCase) (dir, dockerfile string) {
	t.Helper()
	dir = t.TempDir()
	files := map[string]file{}
	for k, v := range c.files {
		if !v.dir && v.link == "" {
			v.content = e.expand(v.content)
		}
		files[k] = v
	}
	if _, ok := files[c.dockerfilePath()]; !ok {
		files[c.dockerfilePath()] = txt(e.expand(c.dockerfile))
	}
	writeTree(t, dir, files)
	return dir, filepath.Join(dir, filepath.FromSlash(c.dockerfilePath()))
}

// builder builds the context in dir and pushes the image as tag.
type builder func(ctx context.Context, t *testing.T, e *env, dir, dockerfile, tag string, c diffCase) error

// buildWithDocker is the reference: docker build (BuildKit) + docker push.
func buildWithDocker(ctx context.Context, t *testing.T, e *env, dir, dockerfile, tag string, c diffCase) error {
	t.Cleanup(func() { e.docker.RemoveImages(context.Background(), tag) })
	if err := e.docker.BuildTarget(ctx, dir, dockerfile, tag, c.target, c.buildArgs...); err != nil {
		return err
	}
	return e.docker.Push(ctx, tag)
}

// buildWithShip runs the ship binary with --push.
func buildWithShip(ctx context.Context, t *testing.T, e *env, dir, dockerfile, tag string, c diffCase) error {
	t.Cleanup(func() { e.docker.RemoveImages(context.Background(), tag) })
	work := t.TempDir()
	args := []string{"--context", dir, "--file", dockerfile, "--tag", tag, "--push",
		"--insecure-registry", e.reg.Host, "--cache-dir", filepath.Join(work, "cache")}
	if c.target != "" {
		args = append(args, "--target", c.target)
	}
	for _, a := range c.buildArgs {
		args = append(args, "--build-arg", a)
	}
	res := runShipInTemp(t, ctx, work, nil, args...)
	if res.Code != 0 {
		return fmt.Errorf("ship failed: %s", res)
	}
	return nil
}

// runDiff builds c with ref and with candidate and compares the images.
func (e *env) runDiff(ctx context.Context, t *testing.T, c diffCase, ref, candidate builder) comparison {
	t.Helper()
	dir, dockerfile := e.prepare(t, c)
	refTag := e.reg.Ref("ref/" + tagName(c.name) + ":1")
	candTag := e.reg.Ref("ship/" + tagName(c.name) + ":1")
	if err := ref(ctx, t, e, dir, dockerfile, refTag, c); err != nil {
		t.Fatalf("reference build: %v", err)
	}
	if err := candidate(ctx, t, e, dir, dockerfile, candTag, c); err != nil {
		t.Fatalf("candidate build: %v", err)
	}
	return e.compare(ctx, t, refTag, candTag)
}

// comparison is the result of comparing a reference image with a candidate.
type comparison struct {
	diffs    []string // differences that fail the test
	accepted []string // differences explained by the reference's older frontend
}

// compare compares the images ref and cand (both in the registry): config,
// history, each layer's entries, and the flattened file system as docker
// exports it.
func (e *env) compare(ctx context.Context, t *testing.T, ref, cand string) comparison {
	t.Helper()
	refImg, candImg := e.remoteImage(t, ref), e.remoteImage(t, cand)
	refCfg, err := refImg.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	candCfg, err := candImg.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var c comparison
	c.diffs, c.accepted = compareConfig(refCfg, candCfg)
	c.diffs = append(c.diffs, compareLayers(t, refImg, candImg)...)
	if err := e.docker.Pull(ctx, cand); err != nil {
		t.Fatalf("docker pull of the candidate: %v", err)
	}
	if err := e.docker.Pull(ctx, ref); err != nil {
		t.Fatalf("docker pull of the reference: %v", err)
	}
	refTree := e.exportTree(ctx, t, ref)
	candTree := e.exportTree(ctx, t, cand)
	c.diffs = append(c.diffs, compareTrees("fs", refTree, candTree, ignoredPath)...)
	if len(candCfg.Config.Cmd)+len(candCfg.Config.Entrypoint) > 0 || len(refCfg.Config.Cmd)+len(refCfg.Config.Entrypoint) > 0 {
		c.diffs = append(c.diffs, e.compareRuns(ctx, ref, cand)...)
	}
	return c
}

// compareRuns runs both images with docker run (their CMD/ENTRYPOINT) and
// compares what they print on stdout and how they exit.
func (e *env) compareRuns(ctx context.Context, ref, cand string) []string {
	run := func(img string) (string, int) {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, err := e.docker.Run(rctx, img)
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			code = -1
		}
		return out, code
	}
	refOut, refCode := run(ref)
	candOut, candCode := run(cand)
	if refOut != candOut || refCode != candCode {
		return []string{fmt.Sprintf("docker run: ship's image printed %q and exited %d, BuildKit's %q and %d", candOut, candCode, refOut, refCode)}
	}
	return nil
}

// compareLayers compares the entries of each layer the two images do not
// share (same count of layers assumed; compareConfig reports otherwise).
func compareLayers(t *testing.T, ref, cand v1.Image) []string {
	t.Helper()
	rl, err := ref.Layers()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := cand.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(rl) != len(cl) {
		return nil
	}
	var diffs []string
	for i := range rl {
		rd, err1 := rl[i].DiffID()
		cd, err2 := cl[i].DiffID()
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if rd == cd {
			continue
		}
		rt, ct := layerTree(t, rl[i]), layerTree(t, cl[i])
		diffs = append(diffs, compareTrees(fmt.Sprintf("layer %d", i), rt, ct, nil)...)
	}
	return diffs
}

func layerTree(t *testing.T, l v1.Layer) tree {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr, err := readTree(rc)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func (e *env) configFile(t *testing.T, ref string) *v1.ConfigFile {
	t.Helper()
	img := e.remoteImage(t, ref)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("reading config of %s: %v", ref, err)
	}
	return cf
}

func (e *env) remoteImage(t testing.TB, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("fetching %s: %v", ref, err)
	}
	return img
}

// entry is one path of a flattened file system.
type entry struct {
	typ      byte
	mode     int64
	uid, gid int
	size     int64
	sum      string
	link     string
}

func (en entry) String() string {
	typ := map[byte]string{tar.TypeReg: "file", tar.TypeDir: "dir", tar.TypeSymlink: "symlink",
		tar.TypeLink: "hardlink", tar.TypeChar: "chardev", tar.TypeBlock: "blockdev", tar.TypeFifo: "fifo"}[en.typ]
	if typ == "" {
		typ = fmt.Sprintf("type %q", en.typ)
	}
	s := fmt.Sprintf("%s %04o %d:%d", typ, en.mode, en.uid, en.gid)
	switch en.typ {
	case tar.TypeReg:
		s += fmt.Sprintf(" %d bytes sha256:%.12s", en.size, en.sum)
	case tar.TypeSymlink, tar.TypeLink:
		s += " -> " + en.link
	}
	return s
}

// tree maps absolute paths to entries.
type tree map[string]entry

// readTree reads a tar stream into a tree.
func readTree(r io.Reader) (tree, error) {
	out := tree{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading tar: %w", err)
		}
		p := path.Clean("/" + h.Name)
		en := entry{typ: h.Typeflag, mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, link: h.Linkname}
		if en.typ == tar.TypeRegA {
			en.typ = tar.TypeReg
		}
		if en.typ == tar.TypeReg {
			sum := sha256.New()
			n, err := io.Copy(sum, tr)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", p, err)
			}
			en.size, en.sum = n, hex.EncodeToString(sum.Sum(nil))
		}
		out[p] = en
	}
}

// exportTree flattens image with docker create + docker export.
func (e *env) exportTree(ctx context.Context, t *testing.T, image string) tree {
	t.Helper()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := e.docker.Export(ctx, image, pw)
		pw.CloseWithError(err)
		errc <- err
	}()
	tr, err := readTree(pr)
	pr.CloseWithError(errors.New("done"))
	if xerr := <-errc; xerr != nil {
		t.Fatalf("exporting %s: %v", image, xerr)
	}
	if err != nil {
		t.Fatalf("exporting %s: %v", image, err)
	}
	return tr
}

// imageTree flattens an image from the registry (ship-only tests).
func (e *env) imageTree(t testing.TB, ref string) tree {
	t.Helper()
	rc := mutate.Extract(e.remoteImage(t, ref))
	defer rc.Close()
	tr, err := readTree(rc)
	if err != nil {
		t.Fatalf("flattening %s: %v", ref, err)
	}
	return tr
}

// ignoredPath reports paths docker create adds to every container.
func ignoredPath(p string) bool {
	switch p {
	case "/", "/.dockerenv", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/mtab":
		return true
	}
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// compareTrees lists paths missing on one side or different; what names
// the trees in the messages; ignore (optional) skips paths.
func compareTrees(what string, ref, cand tree, ignore func(string) bool) []string {
	paths := map[string]bool{}
	for p := range ref {
		paths[p] = true
	}
	for p := range cand {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		if ignore == nil || !ignore(p) {
			sorted = append(sorted, p)
		}
	}
	sort.Strings(sorted)
	var diffs []string
	for _, p := range sorted {
		r, inRef := ref[p]
		c, inCand := cand[p]
		switch {
		case !inCand:
			diffs = append(diffs, fmt.Sprintf("%s %s: only in BuildKit's image (%s)", what, p, r))
		case !inRef:
			diffs = append(diffs, fmt.Sprintf("%s %s: only in ship's image (%s)", what, p, c))
		case r != c:
			diffs = append(diffs, fmt.Sprintf("%s %s: BuildKit %s, ship %s", what, p, r, c))
		}
	}
	return diffs
}

// normalize turns empty slices and maps into nil so that an omitted field
// and an empty one compare equal.
func normalize(v any) any {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map:
		if rv.Len() == 0 {
			return nil
		}
	case reflect.Pointer:
		if rv.IsNil() {
			return nil
		}
	}
	return v
}

func jsonString(v any) string {
	b, err := json.Marshal(normalize(v))
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

// compareConfig lists the config and history fields that differ, and the
// history differences explained by the reference's older frontend.
func compareConfig(ref, cand *v1.ConfigFile) (diffs, accepted []string) {
	field := func(name string, r, c any) {
		if rs, cs := jsonString(r), jsonString(c); rs != cs {
			diffs = append(diffs, fmt.Sprintf("config %s: BuildKit %s, ship %s", name, rs, cs))
		}
	}
	rc, cc := ref.Config, cand.Config
	field("Architecture", ref.Architecture, cand.Architecture)
	field("OS", ref.OS, cand.OS)
	field("Env", rc.Env, cc.Env)
	field("WorkingDir", rc.WorkingDir, cc.WorkingDir)
	field("User", rc.User, cc.User)
	field("ExposedPorts", rc.ExposedPorts, cc.ExposedPorts)
	field("Volumes", rc.Volumes, cc.Volumes)
	field("Labels", rc.Labels, cc.Labels)
	field("Entrypoint", rc.Entrypoint, cc.Entrypoint)
	field("Cmd", rc.Cmd, cc.Cmd)
	field("StopSignal", rc.StopSignal, cc.StopSignal)
	field("Healthcheck", rc.Healthcheck, cc.Healthcheck)
	field("OnBuild", rc.OnBuild, cc.OnBuild)
	field("Shell", rc.Shell, cc.Shell)
	field("ArgsEscaped", rc.ArgsEscaped, cc.ArgsEscaped)
	field("layer count", len(ref.RootFS.DiffIDs), len(cand.RootFS.DiffIDs))

	hist := func(h []v1.History) []string {
		out := make([]string, len(h))
		for i, e := range h {
			out[i] = fmt.Sprintf("%q empty_layer=%v comment=%q", e.CreatedBy, e.EmptyLayer, e.Comment)
		}
		return out
	}
	if len(ref.History) != len(cand.History) {
		rh, ch := hist(ref.History), hist(cand.History)
		diffs = append(diffs, fmt.Sprintf("history: BuildKit has %d entries, ship %d:\n    BuildKit: %s\n    ship:     %s",
			len(rh), len(ch), strings.Join(rh, "\n              "), strings.Join(ch, "\n              ")))
		return diffs, nil
	}
	for i, r := range ref.History {
		c := cand.History[i]
		if r.CreatedBy == c.CreatedBy && r.EmptyLayer == c.EmptyLayer && r.Comment == c.Comment {
			continue
		}
		msg := fmt.Sprintf("history[%d]: BuildKit %s, ship %s", i, hist(ref.History[i : i+1])[0], hist(cand.History[i : i+1])[0])
		if r.EmptyLayer == c.EmptyLayer && r.Comment == c.Comment && legacyCreatedBy(r.CreatedBy, c.CreatedBy) {
			accepted = append(accepted, msg)
			continue
		}
		diffs = append(diffs, msg)
	}
	return diffs, accepted
}

var (
	reCopyFlag    = regexp.MustCompile(` --(chown|chmod)=\S+`)
	reLegacyPorts = regexp.MustCompile(`([0-9-]+/[a-z]+):\{\}`)
)

// legacyCreatedBy reports whether ref, a history entry written by Docker
// 20.10's Dockerfile frontend, and cand, the entry current BuildKit (the
// version of the parser ship uses) writes for the same instruction, differ
// only in the ways the frontend changed since:
//   - COPY/ADD: the old frontend leaves out --chown and --chmod;
//   - ARG: the old frontend writes the Dockerfile's default, the new one the
//     value in effect (so only the names are compared);
//   - EXPOSE: the old frontend prints a map ("map[80/tcp:{}]"), the new one
//     a list ("[80/tcp]");
//   - HEALTHCHECK: the old frontend prints a pointer to its own struct; the
//     config's Healthcheck is compared exactly anyway.
func legacyCreatedBy(ref, cand string) bool {
	keyword := func(s string) string { k, _, _ := strings.Cut(s, " "); return k }
	if keyword(ref) != keyword(cand) {
		return false
	}
	switch keyword(ref) {
	case "COPY", "ADD":
		return reCopyFlag.ReplaceAllString(cand, "") == ref
	case "ARG":
		names := func(s string) []string {
			var out []string
			for _, f := range strings.Fields(strings.TrimPrefix(s, "ARG ")) {
				k, _, _ := strings.Cut(f, "=")
				out = append(out, k)
			}
			return out
		}
		return reflect.DeepEqual(names(ref), names(cand))
	case "EXPOSE":
		var old []string
		for _, m := range reLegacyPorts.FindAllStringSubmatch(ref, -1) {
			old = append(old, m[1])
		}
		cur := strings.Fields(strings.Trim(strings.TrimPrefix(cand, "EXPOSE "), "[]"))
		sort.Strings(old)
		sort.Strings(cur)
		return reflect.DeepEqual(old, cur)
	case "HEALTHCHECK":
		return true
	}
	return false
}

// report fails t with a readable list of the differences that are not
// accepted, and logs the accepted ones. legacy lists accepted differences
// (exact lines) particular to the case.
func report(t *testing.T, what string, c comparison, legacy ...string) {
	t.Helper()
	var diffs []string
	accepted := append([]string(nil), c.accepted...)
	for _, d := range c.diffs {
		if slices.Contains(legacy, d) {
			accepted = append(accepted, d)
		} else {
			diffs = append(diffs, d)
		}
	}
	if len(accepted) > 0 {
		t.Logf("%d differences accepted (Docker 20.10's frontend differs from current BuildKit):\n  %s",
			len(accepted), strings.Join(accepted, "\n  "))
	}
	if len(diffs) > 0 {
		t.Errorf("%d differences between %s:\n  %s", len(diffs), what, strings.Join(diffs, "\n  "))
	}
}
