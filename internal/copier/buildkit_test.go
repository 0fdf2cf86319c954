package copier

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// dockerClient returns the docker client that can build with BuildKit
// (SHIP_TEST_DOCKER overrides), or skips the test; under CI=true a missing
// docker fails it.
func dockerClient(t *testing.T) string {
	t.Helper()
	client := os.Getenv("SHIP_TEST_DOCKER")
	if client == "" {
		client = "/usr/bin/docker"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, client, "version").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("docker (%s) is not usable: %v: %s", client, err, bytes.TrimSpace(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return client
}

// fsState is a flattened file system: name → rendered entry.
type fsState map[string]string

func renderHeader(h *tar.Header, body []byte) string {
	typ := map[byte]string{tar.TypeReg: "f", tar.TypeDir: "d", tar.TypeSymlink: "l", tar.TypeLink: "h"}[h.Typeflag]
	s := fmt.Sprintf("%s %04o %d:%d", typ, h.Mode&0o7777, h.Uid, h.Gid)
	if h.Linkname != "" {
		s += " ->" + h.Linkname
	}
	if h.Typeflag == tar.TypeReg {
		s += fmt.Sprintf(" =%q", body)
	}
	return s
}

// TestDifferentialBuildKit builds a Dockerfile FROM scratch with the local
// Docker engine's BuildKit and compares its file system with the entries
// Plan produces for the same instructions, parent directories included.
func TestDifferentialBuildKit(t *testing.T) {
	t.Parallel()
	client := dockerClient(t)
	differential(t, false, func(ctx context.Context, ctxDir, out string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, client, "build", "-o", "type=tar,dest="+out, ctxDir)
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=1")
		return cmd
	})
}

// TestDifferentialCurrentBuildKit runs the same comparison, plus the
// instructions Docker 20.10's frontend rejects (--exclude, --link, --chmod on
// directories, ADD --chown of an archive), against a current buildkitd:
// set SHIP_BUILDKIT_ADDR (e.g. unix:///run/buildkit/sock) and optionally
// SHIP_BUILDCTL (default "buildctl"); .ci/buildkitd builds and starts one.
// Without it the test fails under CI=true and skips otherwise.
func TestDifferentialCurrentBuildKit(t *testing.T) {
	t.Parallel()
	addr := os.Getenv("SHIP_BUILDKIT_ADDR")
	if addr == "" {
		msg := "SHIP_BUILDKIT_ADDR is not set: no current buildkitd to compare with (eval \"$(.ci/buildkitd)\")"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	buildctl := os.Getenv("SHIP_BUILDCTL")
	if buildctl == "" {
		buildctl = "buildctl"
	}
	differential(t, true, func(ctx context.Context, ctxDir, out string) *exec.Cmd {
		return exec.CommandContext(ctx, buildctl, "--addr", addr, "build", "--frontend", "dockerfile.v0",
			"--local", "context="+ctxDir, "--local", "dockerfile="+ctxDir, "--output", "type=tar,dest="+out)
	})
}

type step struct {
	line string
	req  Request
	from bool // COPY --from=src
}

type builderCmd func(ctx context.Context, ctxDir, out string) *exec.Cmd

func differential(t *testing.T, modern bool, build builderCmd) {
	dir := t.TempDir()
	lastMod := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/files/tool.bin" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Last-Modified", lastMod.Format(http.TimeFormat))
		io.WriteString(w, "remote content")
	}))
	t.Cleanup(srv.Close)
	url := srv.URL + "/files/tool.bin"
	sum := sha256.Sum256([]byte("remote content"))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	ctxDir := filepath.Join(dir, "ctx")
	simple := makeTar(t,
		tarFile{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "pkg/", Mode: 0o750, Uid: 1000, Gid: 1000}},
		tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "pkg/a.sh", Mode: 0o755, Uid: 1000, Gid: 1000}, body: "echo a"},
		tarFile{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "pkg/l", Linkname: "/etc/passwd", Mode: 0o777}},
		tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "deep/er/b", Mode: 0o600, Uid: 5, Gid: 5}, body: "b"},
	)
	writeTree(t, ctxDir, map[string]string{
		"a.txt": "a", "b.txt": "b", "c.md": "c",
		"d/x": "x", "d/sub/y": "y", "d/rel": "link:x", "d/abs": "link:/etc/passwd",
		"src/one/x": "1", "src/two/x": "2",
		"tolink": "link:a.txt", "todir": "link:d/sub", "lnk/abs2": "link:/stuff/sub", "empty": "dir",
		"links/bin": "link:usr/bin", "links/lt": "link:/usr/share/zt", "links/etc/run": "link:../run",
		"ign/drop": "drop", "ign/keep": "keep", "secret.env": "s",
		".dockerignore": "secret.env\nign\n!ign/keep\nbdir/**\n**/*.tmp\n",
		"bdir/x":        "x", "bdir/y/z": "z", "d/t.tmp": "t",
		"fake.tar.gz": "not a tar",
	})
	if err := os.WriteFile(filepath.Join(ctxDir, "x.tar.gz"), compress(t, "gzip", simple), 0o644); err != nil {
		t.Fatal(err)
	}
	sg := makeTar(t, tarFile{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "sg/", Mode: 0o2775, Uid: 1, Gid: 50}})
	if err := os.WriteFile(filepath.Join(ctxDir, "sg.tar"), sg, 0o644); err != nil {
		t.Fatal(err)
	}
	writeTree(t, ctxDir, map[string]string{"hl/m": "hard"})
	for _, n := range []string{"hl/z", "hl/a"} {
		if err := os.Link(filepath.Join(ctxDir, "hl", "m"), filepath.Join(ctxDir, filepath.FromSlash(n))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(ctxDir, "d", "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(ctxDir, "b.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	bz, err := os.ReadFile(filepath.Join("testdata", "hello.tar.bz2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "hello.tar.bz2"), bz, 0o644); err != nil {
		t.Fatal(err)
	}

	steps := []step{
		{"COPY a.txt /f1/", Request{Sources: []string{"a.txt"}, Dest: "/f1/"}, false},
		{"COPY b.txt /f2", Request{Sources: []string{"b.txt"}, Dest: "/f2"}, false},
		{"COPY d /d1", Request{Sources: []string{"d"}, Dest: "/d1"}, false},
		{"COPY d /d2/", Request{Sources: []string{"d"}, Dest: "/d2/"}, false},
		{"COPY d/sub /d3/deeper/", Request{Sources: []string{"d/sub"}, Dest: "/d3/deeper/"}, false},
		{"COPY --chown=5:6 a.txt /p/q/r", Request{Sources: []string{"a.txt"}, Dest: "/p/q/r", Chown: &Owner{5, 6}}, false},
		{"COPY --chown=7:8 d /cd/e/", Request{Sources: []string{"d"}, Dest: "/cd/e/", Chown: &Owner{7, 8}}, false},
		{"COPY *.txt /glob/", Request{Sources: []string{"*.txt"}, Dest: "/glob/"}, false},
		{"COPY src/*/x /gx/", Request{Sources: []string{"src/*/x"}, Dest: "/gx/"}, false},
		{"COPY src/t* /gdir/", Request{Sources: []string{"src/t*"}, Dest: "/gdir/"}, false},
		{"COPY nomatch* /none/", Request{Sources: []string{"nomatch*"}, Dest: "/none/"}, false},
		{"COPY tolink todir /sl/", Request{Sources: []string{"tolink", "todir"}, Dest: "/sl/"}, false},
		{"COPY a.txt b.txt /multi", Request{Sources: []string{"a.txt", "b.txt"}, Dest: "/multi"}, false},
		{"COPY a.txt /f1", Request{Sources: []string{"a.txt"}, Dest: "/f1"}, false},
		{"COPY . /all/", Request{Sources: []string{"."}, Dest: "/all/"}, false},
		{"WORKDIR /w", Request{}, false},
		{"COPY c.md rel/", Request{Sources: []string{"c.md"}, Dest: "rel/", WorkDir: "/w"}, false},
		{"COPY c.md .", Request{Sources: []string{"c.md"}, Dest: ".", WorkDir: "/w"}, false},
		{"ADD hello.tar.bz2 /tar/", Request{Sources: []string{"hello.tar.bz2"}, Dest: "/tar/", Add: true}, false},
		// ADD --chown of an archive is not compared: Docker 20.10's BuildKit
		// keeps the archive's owners, current BuildKit (unpack with
		// ChownOpts) applies --chown to every entry, as Plan does.
		{"ADD x.tar.gz /tarc", Request{Sources: []string{"x.tar.gz"}, Dest: "/tarc", Add: true}, false},
		{"ADD fake.tar.gz /fake/", Request{Sources: []string{"fake.tar.gz"}, Dest: "/fake/", Add: true}, false},
		{"COPY x.tar.gz /notx/", Request{Sources: []string{"x.tar.gz"}, Dest: "/notx/"}, false},
		{"ADD " + url + " /dl/", Request{Sources: []string{url}, Dest: "/dl/"}, false},
		{"ADD " + url + " /dl2/named", Request{Sources: []string{url}, Dest: "/dl2/named"}, false},
		{"COPY --chown=7:7 d/sub /d1/", Request{Sources: []string{"d/sub"}, Dest: "/d1/", Chown: &Owner{7, 7}}, false},
		{"COPY --chown=9:9 d /d2/", Request{Sources: []string{"d"}, Dest: "/d2/", Chown: &Owner{9, 9}}, false},
		{"COPY hl /hl/", Request{Sources: []string{"hl"}, Dest: "/hl/"}, false},
		{"COPY a.txt /usr/bin/", Request{Sources: []string{"a.txt"}, Dest: "/usr/bin/"}, false},
		{"COPY links /", Request{Sources: []string{"links"}, Dest: "/"}, false},
		{"COPY b.txt /bin/", Request{Sources: []string{"b.txt"}, Dest: "/bin/"}, false},
		{"COPY c.md /lt", Request{Sources: []string{"c.md"}, Dest: "/lt"}, false},
		{"COPY d/sub /bin/nested/", Request{Sources: []string{"d/sub"}, Dest: "/bin/nested/"}, false},
		{"COPY --chown=3:3 a.txt /etc/run/pid/", Request{Sources: []string{"a.txt"}, Dest: "/etc/run/pid/", Chown: &Owner{3, 3}}, false},
		{"COPY empty /emptydst", Request{Sources: []string{"empty"}, Dest: "/emptydst"}, false},
		{"COPY empty /d2/", Request{Sources: []string{"empty"}, Dest: "/d2/"}, false},
		{"COPY --chown=1:1 empty /emptyown/", Request{Sources: []string{"empty"}, Dest: "/emptyown/", Chown: &Owner{1, 1}}, false},
		// Directories created in a setgid directory inherit its group and
		// bit (only an archive can make one: --chmod drops setgid).
		{"ADD sg.tar /", Request{Sources: []string{"sg.tar"}, Dest: "/", Add: true}, false},
		{"COPY a.txt /sg/n/m/", Request{Sources: []string{"a.txt"}, Dest: "/sg/n/m/"}, false},
		{"COPY --chown=6:7 a.txt /sg/o/", Request{Sources: []string{"a.txt"}, Dest: "/sg/o/", Chown: &Owner{6, 7}}, false},
		{"ADD x.tar.gz /sg/t/", Request{Sources: []string{"x.tar.gz"}, Dest: "/sg/t/", Add: true}, false},
		{"COPY --from=src /stuff /fs1", Request{Sources: []string{"/stuff"}, Dest: "/fs1"}, true},
		{"COPY --from=src /stuff/rel /stuff/tolink /fs2/", Request{Sources: []string{"/stuff/rel", "/stuff/tolink"}, Dest: "/fs2/"}, true},
		{"COPY --from=src --chown=2:2 /stuff/s* /fs3/", Request{Sources: []string{"/stuff/s*"}, Dest: "/fs3/", Chown: &Owner{2, 2}}, true},
		{"COPY --from=src /stuff/viaabs/y /fs4", Request{Sources: []string{"/stuff/viaabs/y"}, Dest: "/fs4"}, true},
		{"COPY --from=src /stuff/lnk/abs2/y /stuff/lnk/abs2 /fs5/", Request{Sources: []string{"/stuff/lnk/abs2/y", "/stuff/lnk/abs2"}, Dest: "/fs5/"}, true},
	}
	// The first stage, for COPY --from.
	srcStage := []step{
		{"COPY --chown=1000:1001 d /stuff", Request{Sources: []string{"d"}, Dest: "/stuff", Chown: &Owner{1000, 1001}}, false},
		{"COPY tolink /stuff/", Request{Sources: []string{"tolink"}, Dest: "/stuff/"}, false},
		{"COPY todir /stuff/viaabs", Request{Sources: []string{"todir"}, Dest: "/stuff/viaabs"}, false},
		{"COPY lnk /stuff/lnk", Request{Sources: []string{"lnk"}, Dest: "/stuff/lnk"}, false},
	}
	if modern {
		steps = append(steps,
			step{"COPY --exclude=*.md --exclude=rel d /ex/", Request{Sources: []string{"d"}, Dest: "/ex/", Excludes: []string{"*.md", "rel"}}, false},
			step{"COPY --exclude=b* *.txt /exg/", Request{Sources: []string{"*.txt"}, Dest: "/exg/", Excludes: []string{"b*"}}, false},
			step{"COPY --exclude=sub --exclude=!sub/y d /exn/", Request{Sources: []string{"d"}, Dest: "/exn/", Excludes: []string{"sub", "!sub/y"}}, false},
			step{"COPY --link a.txt /lk/deep/f", Request{Sources: []string{"a.txt"}, Dest: "/lk/deep/f", Link: true}, false},
			step{"COPY --link d /lkd/", Request{Sources: []string{"d"}, Dest: "/lkd/", Link: true}, false},
			step{"COPY --link a.txt /f1", Request{Sources: []string{"a.txt"}, Dest: "/f1", Link: true}, false},
			step{"COPY --chmod=600 d /m/n", Request{Sources: []string{"d"}, Dest: "/m/n", Chmod: ptr(fs.FileMode(0o600))}, false},
			step{"COPY --chmod=751 a.txt /cm/", Request{Sources: []string{"a.txt"}, Dest: "/cm/", Chmod: ptr(fs.FileMode(0o751))}, false},
			step{"COPY --chmod=4755 --chown=9:9 b.txt /cm2/x/", Request{Sources: []string{"b.txt"}, Dest: "/cm2/x/", Chmod: ptr(fs.FileMode(0o4755)), Chown: &Owner{9, 9}}, false},
			step{"COPY --link --from=src /stuff/sub /lkf/x", Request{Sources: []string{"/stuff/sub"}, Dest: "/lkf/x", Link: true}, true},
			step{"ADD --checksum=" + digest + " --chown=4:5 " + url + " /dl3/", Request{Sources: []string{url}, Dest: "/dl3/", Checksum: digest, Chown: &Owner{4, 5}}, false},
			step{"ADD --chmod=640 " + url + " /dl4", Request{Sources: []string{url}, Dest: "/dl4", Chmod: ptr(fs.FileMode(0o640))}, false},
			step{"COPY --chmod=1777 empty /tmpx", Request{Sources: []string{"empty"}, Dest: "/tmpx", Chmod: ptr(fs.FileMode(0o1777))}, false},
			step{"COPY d/sub /tmpx/", Request{Sources: []string{"d/sub"}, Dest: "/tmpx/"}, false},
			step{"COPY --chmod=700 d/sub /d2", Request{Sources: []string{"d/sub"}, Dest: "/d2", Chmod: ptr(fs.FileMode(0o700))}, false},
			step{"ADD --chown=3:4 x.tar.gz /tarc2", Request{Sources: []string{"x.tar.gz"}, Dest: "/tarc2", Add: true, Chown: &Owner{3, 4}}, false},
		)
	}
	var df strings.Builder
	df.WriteString("FROM scratch AS src\n")
	for _, l := range srcStage {
		df.WriteString(l.line + "\n")
	}
	df.WriteString("FROM scratch\n")
	for _, s := range steps {
		df.WriteString(s.line + "\n")
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "out.tar")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if b, err := build(ctx, ctxDir, out).CombinedOutput(); err != nil {
		t.Fatalf("building the reference: %v\n%s", err, b)
	}
	want := readTarState(t, out)

	c, err := OpenContext(ctxDir, filepath.Join(ctxDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srcFS := fstest.MapFS{}
	apply(t, c, nil, srcStage, fsState{}, srcFS)
	got := fsState{}
	apply(t, c, srcFS, steps, got, fstest.MapFS{})
	// WORKDIR /w creates /w in BuildKit: implicit for the comparison.
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: BuildKit has %s, Plan has nothing", name, w)
		case g != w:
			t.Errorf("%s: BuildKit has %s, Plan has %s", name, w, g)
		}
	}
	for name, g := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: Plan has %s, BuildKit has nothing", name, g)
		}
	}
	if t.Failed() {
		names := make([]string, 0, len(want))
		for n := range want {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			t.Logf("buildkit: %s %s", n, want[n])
		}
	}
}

// apply plans steps in order, recording the result in got and target (which
// is also each step's Target).
func apply(t *testing.T, c *Context, from fs.FS, steps []step, got fsState, target fstest.MapFS) {
	t.Helper()
	for _, s := range steps {
		if s.req.Sources == nil {
			continue
		}
		req := s.req
		req.Context = c
		if s.from {
			req.From = from
		}
		req.Add = strings.HasPrefix(s.line, "ADD")
		req.Target = target
		req.FollowDestSymlinks = true
		if req.WorkDir == "" {
			req.WorkDir = "/"
		}
		es, err := Plan(context.Background(), req)
		if err != nil {
			t.Fatalf("%s: %v", s.line, err)
		}
		for _, e := range es {
			var body []byte
			if e.Open != nil {
				rc, err := e.Open()
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(rc)
				rc.Close()
			}
			// A later entry replaces an earlier one, and a non-directory
			// replaces a whole tree.
			if e.Header.Typeflag != tar.TypeDir {
				for n := range got {
					if strings.HasPrefix(n, e.Header.Name+"/") {
						delete(got, n)
						delete(target, n)
					}
				}
			}
			got[e.Header.Name] = renderHeader(e.Header, body)
			mode := fs.FileMode(e.Header.Mode & 0o777)
			switch e.Header.Typeflag {
			case tar.TypeDir:
				mode |= fs.ModeDir
			case tar.TypeSymlink:
				mode |= fs.ModeSymlink
			}
			if e.Header.Typeflag == tar.TypeSymlink {
				body = []byte(e.Header.Linkname)
			}
			target[e.Header.Name] = &fstest.MapFile{Mode: mode, Data: body, Sys: e.Header}
			// Implicit parents are extracted as 0755 root directories.
			for d := path.Dir(e.Header.Name); d != "."; d = path.Dir(d) {
				if _, ok := target[d]; !ok {
					target[d] = &fstest.MapFile{Mode: fs.ModeDir | 0o755, Sys: &tar.Header{Typeflag: tar.TypeDir, Mode: 0o755}}
				}
			}
		}
	}
}

func readTarState(t *testing.T, file string) fsState {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st := fsState{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return st
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if name == "" || name == "." {
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		st[name] = renderHeader(h, body)
	}
}
