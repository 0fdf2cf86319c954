package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/intesys/ship-action/internal/layer"
)

// buildkitScenario is the base tree (under s/) and the shell commands of one
// RUN (run in s/), one kind of change per directory.
var buildkitScenario = struct {
	files map[string]string // path → content; a trailing "/" makes a directory
	run   []string
}{
	files: map[string]string{
		"chmodsame/f": "f", "dirmtime/": "", "recreate/a": "a", "recreate/b": "b", "hl/one": "one",
		"chtimes/f": "abcd", "mvback/f": "m", "dirmode/sub/f": "d", "del/tree/x/t": "t", "del/keep": "k",
		"d2s/in/i": "i", "f2d/x": "x", "chown/f": "c", "suid/f": "s", "rm/f": "r", "rename/f": "r",
		"link/target1": "1", "link/target2": "2", "d2f/d/e": "e", "same/f": "same",
	},
	run: []string{
		"chmod 644 chmodsame/f",
		"touch dirmtime/x", "rm dirmtime/x",
		"rm -rf recreate", "mkdir recreate", "echo new > recreate/new",
		"ln hl/one hl/three",
		"printf wxyz > chtimes/f", "touch -d @1700000000 chtimes/f",
		"mv mvback/f mvback/g", "mv mvback/g mvback/f",
		"chmod 700 dirmode",
		"rm -rf del/tree",
		"rm -rf d2s/in", "ln -s /etc d2s/in",
		"rm f2d/x", "mkdir f2d/x", "echo y > f2d/x/y",
		"mkdir -p n", "echo p > n/b", "ln n/b n/a",
		"chown 1000:1001 chown/f",
		"chmod 4755 suid/f",
		"rm rm/f",
		"mv rename/f rename/g",
		"ln -s target1 link/l1", "ln -sfn target2 link/l1",
		"rm -rf d2f/d", "echo file > d2f/d",
		"mkdir -p new/nested/deep", "touch new/nested/deep/f", "mkdir new/empty",
		"printf same > same/f",
	},
}

// TestAgainstBuildKit runs buildkitScenario's RUN with a current buildkitd
// (set SHIP_BUILDKIT_ADDR, and SHIP_BUILDCTL unless buildctl is on PATH;
// .ci/buildkitd starts one) and locally with busybox, and compares BuildKit's
// layer with Diff's entries: names, types, modes, owners, link targets and
// contents. Without buildkitd it fails under CI=true and skips otherwise.
func TestAgainstBuildKit(t *testing.T) {
	t.Parallel()
	addr := os.Getenv("SHIP_BUILDKIT_ADDR")
	buildctl := orDefault(os.Getenv("SHIP_BUILDCTL"), "buildctl")
	const busybox = "/usr/bin/busybox"
	for what, missing := range map[string]bool{
		"SHIP_BUILDKIT_ADDR is not set: no current buildkitd (eval \"$(.ci/buildkitd)\")": addr == "",
		busybox + " is missing (Debian package busybox-static)":                           !exists(busybox),
	} {
		if missing {
			if os.Getenv("CI") == "true" {
				t.Fatal(what)
			}
			t.Skip(what)
		}
	}
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// BuildKit.
	bctx := t.TempDir()
	writeScenario(t, filepath.Join(bctx, "s"))
	b, err := os.ReadFile(busybox)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(bctx, "busybox"), b, 0o755))
	dockerfile := "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY s /s\n" +
		"RUN set -e; cd /s; " + strings.Join(buildkitScenario.run, "; ") + "\n"
	must(t, os.WriteFile(filepath.Join(bctx, "Dockerfile"), []byte(dockerfile), 0o644))
	out := filepath.Join(t.TempDir(), "oci.tar")
	cmd := exec.CommandContext(ctx, buildctl, "--addr", addr, "build", "--frontend", "dockerfile.v0",
		"--local", "context="+bctx, "--local", "dockerfile="+bctx, "--output", "type=oci,dest="+out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buildctl: %v\n%s", err, msg)
	}
	want := renderTar(t, lastLayer(t, out))

	// Locally.
	root := t.TempDir()
	writeScenario(t, filepath.Join(root, "s"))
	settle()
	s, err := Take(ctx, root, WithContentHash())
	must(t, err)
	run := exec.CommandContext(ctx, busybox, "sh", "-c", "set -e; cd s; "+strings.Join(buildkitScenario.run, "; "))
	run.Dir = root
	run.Env = []string{"PATH=/nonexistent"} // busybox runs its applets
	if msg, err := run.CombinedOutput(); err != nil {
		t.Fatalf("running the scenario: %v\n%s", err, msg)
	}
	entries, err := s.Diff(ctx, root)
	must(t, err)
	got := renderEntries(t, entries)
	if !slices.Equal(got, want) {
		t.Errorf("Diff: layers differ\n got %q\nwant %q", got, want)
	}

	// Through an overlay mount, read from its upper directory.
	tmp, err := os.MkdirTemp("", "buildkit-upper-")
	must(t, err)
	defer os.RemoveAll(tmp)
	lower, upper, work, merged := filepath.Join(tmp, "l"), filepath.Join(tmp, "u"), filepath.Join(tmp, "w"), filepath.Join(tmp, "m")
	for _, d := range []string{lower, upper, work, merged} {
		must(t, os.Mkdir(d, 0o755))
	}
	writeScenario(t, filepath.Join(lower, "s"))
	must(t, unix.Mount("overlay", merged, "overlay", 0,
		"lowerdir="+lower+",upperdir="+upper+",workdir="+work+",redirect_dir=off,metacopy=off,index=off"))
	run = exec.CommandContext(ctx, busybox, "sh", "-c", "set -e; cd s; "+strings.Join(buildkitScenario.run, "; "))
	run.Dir = merged
	run.Env = []string{"PATH=/nonexistent"}
	msg, err := run.CombinedOutput()
	must(t, unix.Unmount(merged, 0))
	if err != nil {
		t.Fatalf("running the scenario on an overlay: %v\n%s", err, msg)
	}
	entries, err = DiffUpper(ctx, upper, lower)
	must(t, err)
	if got := renderEntries(t, entries); !slices.Equal(got, want) {
		t.Errorf("DiffUpper: layers differ\n got %q\nwant %q", got, want)
	}
}

func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// writeScenario creates the base tree with whole-second mtimes, as files of
// an extracted layer have.
func writeScenario(t testing.TB, dir string) {
	t.Helper()
	for p, content := range buildkitScenario.files {
		if strings.HasSuffix(p, "/") {
			mkdir(t, dir, p)
			continue
		}
		write(t, dir, p, content, 0o644)
	}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, baseTime, baseTime)
	})
	must(t, err)
}

// lastLayer returns the uncompressed last layer of the image in an OCI
// layout tar.
func lastLayer(t testing.TB, ociTar string) []byte {
	t.Helper()
	blobs := map[string][]byte{}
	f, err := os.Open(ociTar)
	must(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		b, err := io.ReadAll(tr)
		must(t, err)
		blobs[h.Name] = b
	}
	blob := func(digest string) []byte {
		b, ok := blobs["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
		if !ok {
			t.Fatalf("blob %s missing in %s", digest, ociTar)
		}
		return b
	}
	var index, manifest struct {
		Manifests []struct{ Digest string }
		Layers    []struct{ Digest string }
	}
	must(t, json.Unmarshal(blobs["index.json"], &index))
	if len(index.Manifests) != 1 {
		t.Fatalf("index has %d manifests", len(index.Manifests))
	}
	must(t, json.Unmarshal(blob(index.Manifests[0].Digest), &manifest))
	zr, err := gzip.NewReader(bytes.NewReader(blob(manifest.Layers[len(manifest.Layers)-1].Digest)))
	must(t, err)
	b, err := io.ReadAll(zr)
	must(t, err)
	return b
}

func renderHeader(h *tar.Header, content []byte) string {
	name := strings.TrimSuffix(h.Name, "/")
	if strings.HasPrefix(filepath.Base(name), ".wh.") {
		return "w " + name
	}
	s := fmt.Sprintf("%c %s %o %d:%d", h.Typeflag, name, h.Mode&0o7777, h.Uid, h.Gid)
	if h.Linkname != "" {
		s += " -> " + h.Linkname
	}
	if h.Typeflag == tar.TypeReg {
		s += fmt.Sprintf(" %q", content)
	}
	return s
}

func renderTar(t testing.TB, b []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		must(t, err)
		content, err := io.ReadAll(tr)
		must(t, err)
		out = append(out, renderHeader(h, content))
	}
}

// renderEntries renders entries as written by layer.New.
func renderEntries(t testing.TB, entries []layer.Entry) []string {
	t.Helper()
	l, err := layer.New(context.Background(), entries)
	must(t, err)
	rc, err := l.Uncompressed()
	must(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	must(t, err)
	return renderTar(t, b)
}
