package e2e

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/intesys/ship-action/internal/testbed"
)

// debianCacheEnv names the directory that keeps the debootstrapped Debian
// rootfs between runs (in its subdirectory debian-bookworm); default
// $HOME/.cache/ship-test.
const debianCacheEnv = "SHIP_TEST_CACHE"

// debianMirror is where debootstrap and apt-get inside the builds fetch
// packages from.
const debianMirror = "http://deb.debian.org/debian"

// TestDebian builds Dockerfiles on a real Debian bookworm base (a
// debootstrap --variant=minbase rootfs imported as a one-layer image) with
// ship, among them one whose RUN installs python3 with apt-get, pushes
// them, and runs every image with docker.
func TestDebian(t *testing.T) {
	t.Parallel()
	requireDebianMirror(t)
	rootfs := debianRootfs(t)
	d := testbed.Docker(t)
	reg := testbed.StartRegistry(t)
	version, err := os.ReadFile(filepath.Join(rootfs, "etc", "debian_version"))
	if err != nil {
		t.Fatal(err)
	}
	baseRef := reg.Ref("base/debian:bookworm")
	testbed.PushImage(t, debianImage(t, rootfs), baseRef)

	mainPy := "import sys\n" +
		"with open('/etc/debian_version') as f:\n" +
		"    v = f.read().strip()\n" +
		"print('python %d on debian %s' % (sys.version_info.major, v))\n"
	tests := []struct {
		name       string
		dockerfile string
		want       string
		// runLayer is the index of a RUN's layer (0 is the base) and
		// inRunLayer paths that layer must hold.
		runLayer   int
		inRunLayer []string
		layers     int
	}{
		{
			name: "apt-get install python3",
			dockerfile: "FROM " + baseRef + "\n" +
				"RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*\n" +
				"COPY app/ /app/\n" +
				"CMD [\"python3\", \"/app/main.py\"]\n",
			want:       "python 3 on debian " + strings.TrimSpace(string(version)) + "\n",
			runLayer:   1,
			inRunLayer: []string{"usr/bin/python3", "var/lib/dpkg/status"},
			layers:     3,
		},
		{
			name: "user from useradd and workdir",
			dockerfile: "FROM " + baseRef + "\n" +
				"RUN useradd --create-home --uid 1001 runner\n" +
				"USER runner\n" +
				"WORKDIR /home/runner/work\n" +
				"RUN id -un > who && id -u >> who && stat -c '%U %a' . >> who\n" +
				"CMD [\"cat\", \"who\"]\n",
			want:       "runner\n1001\nrunner 755\n",
			runLayer:   1,
			inRunLayer: []string{"etc/passwd", "etc/group", "home/runner/.bashrc"},
			layers:     4,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			dir := t.TempDir()
			writeTree(t, dir, map[string]file{"Dockerfile": txt(tc.dockerfile), "app/main.py": txt(mainPy)})
			tag := reg.Ref("debian/" + tagName(tc.name) + ":1")
			t.Cleanup(func() { d.RemoveImages(context.Background(), tag) })
			work := t.TempDir()
			start := time.Now()
			res := runShipInTemp(t, ctx, work, nil, "--context", dir, "--tag", tag, "--push",
				"--insecure-registry", reg.Host, "--cache-dir", filepath.Join(work, "cache"))
			if res.Code != 0 {
				t.Fatalf("ship failed: %s", res)
			}
			t.Logf("ship built and pushed in %s", time.Since(start).Round(time.Millisecond))

			img := (&env{reg: reg, docker: d}).remoteImage(t, tag)
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			if len(layers) != tc.layers {
				t.Fatalf("%d layers, want %d", len(layers), tc.layers)
			}
			names := layerNames(t, layers[tc.runLayer])
			for _, p := range tc.inRunLayer {
				if !slices.Contains(names, p) {
					t.Errorf("RUN layer lacks %s", p)
				}
			}
			for _, n := range names {
				if n == "proc" || n == "sys" || strings.HasPrefix(n, "proc/") || strings.HasPrefix(n, "sys/") ||
					strings.HasPrefix(n, "dev/") {
					t.Errorf("RUN layer holds %s, which belongs to the sandbox", n)
				}
			}

			if err := d.Pull(ctx, tag); err != nil {
				t.Fatal(err)
			}
			out, err := d.Run(ctx, tag)
			if err != nil {
				t.Fatal(err)
			}
			if out != tc.want {
				t.Errorf("image printed %q, want %q", out, tc.want)
			}
		})
	}
}

// requireDebianMirror fails (CI=true) or skips the test when the Debian
// mirror cannot be reached: debootstrap and apt-get need it.
func requireDebianMirror(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, debianMirror+"/dists/bookworm/InRelease", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		testbed.RequireService(t, "network access to "+debianMirror+": "+err.Error())
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		testbed.RequireService(t, fmt.Sprintf("network access to %s: %s", debianMirror, resp.Status))
	}
}

// debianRootfs returns the cached debootstrap --variant=minbase bookworm
// rootfs, making it first when it is missing. It is built under a temporary
// name and renamed when complete, so an interrupted run leaves no half
// rootfs behind.
func debianRootfs(t *testing.T) string {
	t.Helper()
	cache := os.Getenv(debianCacheEnv)
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("finding the cache dir: %v (set %s)", err, debianCacheEnv)
		}
		cache = filepath.Join(home, ".cache", "ship-test")
	}
	dir := filepath.Join(cache, "debian-bookworm")
	if _, err := os.Stat(filepath.Join(dir, "etc", "debian_version")); err == nil {
		return dir
	}
	bin, err := exec.LookPath("debootstrap")
	if err != nil {
		testbed.RequireService(t, "debootstrap: "+err.Error())
		return ""
	}
	if os.Geteuid() != 0 {
		testbed.RequireService(t, "debootstrap needs root")
		return ""
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(cache, "debian-bookworm.tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, bin, "--variant=minbase", "bookworm", tmp, debianMirror).CombinedOutput()
	if err != nil {
		t.Fatalf("debootstrap: %v\n%s", err, lastLines(string(out), 20))
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another run may have finished first; its rootfs is as good.
		if _, serr := os.Stat(filepath.Join(dir, "etc", "debian_version")); serr != nil {
			t.Fatalf("renaming the rootfs: %v", err)
		}
	}
	t.Logf("debootstrap made %s in %s", dir, time.Since(start).Round(time.Second))
	return dir
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// debianImage returns a linux image of the host's architecture with one
// layer: the rootfs as GNU tar archives it (numeric owners, names without a
// leading "./"), with the config docker import gives a Debian rootfs.
func debianImage(t *testing.T, rootfs string) v1.Image {
	t.Helper()
	entries, err := os.ReadDir(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "rootfs.tar")
	args := []string{"-C", rootfs, "--numeric-owner", "-cf", tarPath, "--"}
	for _, e := range entries {
		args = append(args, e.Name())
	}
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		t.Fatalf("archiving the rootfs: %v\n%s", err, out)
	}
	layer, err := tarball.LayerFromFile(tarPath, tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = runtime.GOARCH, "linux"
	cf.Created = v1.Time{Time: time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = []string{"bash"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// layerNames lists the entry names of a layer, without a trailing slash.
func layerNames(t *testing.T, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatalf("reading layer: %v", err)
		}
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/"))
	}
}
