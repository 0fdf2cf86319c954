package e2e

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/intesys/ship-action/internal/testbed"
)

// aarch64ELF is the 64-byte header of an arm64 executable: on an amd64
// machine without a binfmt_misc handler, exec fails with "exec format
// error", as a real arm64 /bin/sh would.
func aarch64ELF() string {
	h := make([]byte, 64)
	copy(h, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(h[16:], 2)   // ET_EXEC
	binary.LittleEndian.PutUint16(h[18:], 183) // EM_AARCH64
	binary.LittleEndian.PutUint32(h[20:], 1)   // EV_CURRENT
	return string(h)
}

// pushMultiArchBase pushes a base index: the busybox image for amd64 and
// an arm64 image whose /bin/sh is an arm64 executable header. It returns
// the base's reference and each platform's first layer digest.
func pushMultiArchBase(t *testing.T, reg *testbed.Registry) (string, map[string]v1.Hash) {
	t.Helper()
	amd := testbed.BusyboxImage(t)
	arm := testbed.LinuxImage(t, testbed.FilesLayer(t, map[string]string{"bin/sh": aarch64ELF(), "etc/arch": "arm64\n"}))
	cf, err := arm.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.Variant = "arm64", "v8"
	if arm, err = mutate.ConfigFile(arm, cf); err != nil {
		t.Fatal(err)
	}
	firsts := map[string]v1.Hash{}
	var adds []mutate.IndexAddendum
	for arch, img := range map[string]v1.Image{"amd64": amd, "arm64": arm} {
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if firsts[arch], err = ls[0].Digest(); err != nil {
			t.Fatal(err)
		}
		p := v1.Platform{OS: "linux", Architecture: arch}
		if arch == "arm64" {
			p.Variant = "v8"
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	ref := reg.Ref("base:multi")
	if err := remote.WriteIndex(mustRef(t, ref), idx); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return ref, firsts
}

// TestMultiPlatform builds a COPY-only Dockerfile for linux/amd64 and
// linux/arm64 in one run: each platform is built on its own base image,
// the index of both is pushed (and written as an OCI layout), docker runs
// the machine's image from the index, and two runs with
// SOURCE_DATE_EPOCH in separate cache dirs give the same index digest.
// A RUN for arm64 on this amd64 machine without an emulator fails with the
// emulation error, and nothing is pushed.
func TestMultiPlatform(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d := testbed.Docker(t)
	reg := testbed.StartRegistry(t)
	base, firsts := pushMultiArchBase(t, reg)
	src := t.TempDir()
	writeTree(t, src, map[string]file{
		"Dockerfile": txt("FROM " + base + "\nARG TARGETARCH\nCOPY app.txt /app-$TARGETARCH.txt\nLABEL arch=$TARGETARCH\n"),
		"app.txt":    txt("multi\n"),
	})
	tag := reg.Ref("app:1")
	epoch := []string{"SOURCE_DATE_EPOCH=1700000000"}
	oci := filepath.Join(t.TempDir(), "oci")
	res := runShipInTemp(t, ctx, t.TempDir(), epoch, "--context", src, "--platforms", "linux/amd64,linux/arm64",
		"--tag", tag, "--push", "--insecure-registry", reg.Host, "--scan=false", "--cache-dir", t.TempDir(), "--output", oci)
	if res.Code != 0 {
		t.Fatalf("multi-platform build: %s", res)
	}
	out := lastOutputs(t, res)

	r := mustRef(t, tag)
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("reading the index %s: %v", tag, err)
	}
	if got, _ := idx.Digest(); got.String() != out.Digest {
		t.Errorf("index digest %s, outputs say %s", got, out.Digest)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("index has %d entries, want 2", len(im.Manifests))
	}
	for i, arch := range []string{"amd64", "arm64"} {
		m := im.Manifests[i]
		if m.Platform == nil || m.Platform.Architecture != arch || m.Platform.OS != "linux" {
			t.Errorf("entry %d: platform %v, want linux/%s", i, m.Platform, arch)
			continue
		}
		img, err := remote.Image(r.Context().Digest(m.Digest.String()))
		if err != nil {
			t.Fatalf("%s image: %v", arch, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != arch || cf.Config.Labels["arch"] != arch {
			t.Errorf("%s image: config architecture %q, label arch=%q", arch, cf.Architecture, cf.Config.Labels["arch"])
		}
		ls, err := img.Layers()
		if err != nil || len(ls) != 2 {
			t.Fatalf("%s image: %d layers (%v), want base + COPY", arch, len(ls), err)
		}
		if got, _ := ls[0].Digest(); got != firsts[arch] {
			t.Errorf("%s image is built on layer %s, want the %s base's %s", arch, got, arch, firsts[arch])
		}
		// Each platform's image has its own provenance, naming its platform.
		prov := referrerDocs(t, r.Context().Digest(m.Digest.String()))["application/vnd.in-toto+json"]
		if !strings.Contains(prov, `"platform":"linux/`+arch) {
			t.Errorf("%s image: provenance %q does not name its platform", arch, prov)
		}
	}

	// The OCI layout holds the same index.
	lp, err := layout.FromPath(oci)
	if err != nil {
		t.Fatal(err)
	}
	li, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	lm, err := li.IndexManifest()
	if err != nil || len(lm.Manifests) != 1 || lm.Manifests[0].Digest.String() != out.Digest || !lm.Manifests[0].MediaType.IsIndex() {
		t.Errorf("OCI layout index.json: %+v (%v), want the index %s", lm, err, out.Digest)
	}

	t.Cleanup(func() { d.RemoveImages(context.Background(), tag) })
	got, err := d.Exec(ctx, "run", "--rm", tag, "cat", "/app-amd64.txt")
	if err != nil || string(got) != "multi\n" {
		t.Errorf("docker run %s: %q, %v", tag, got, err)
	}

	// Reproducible: another run in another cache dir, same index digest.
	res = runShipInTemp(t, ctx, t.TempDir(), epoch, "--context", src, "--platforms", "linux/amd64,linux/arm64",
		"--scan=false", "--cache-dir", t.TempDir())
	if res.Code != 0 {
		t.Fatalf("second build: %s", res)
	}
	if again := lastOutputs(t, res); again.Digest != out.Digest {
		t.Errorf("second build: index %s, first %s", again.Digest, out.Digest)
	}

	// RUN for arm64 needs an emulator this machine does not have.
	runSrc := t.TempDir()
	writeTree(t, runSrc, map[string]file{"Dockerfile": txt("FROM " + base + "\nRUN echo built > /built\n")})
	res = runShipInTemp(t, ctx, t.TempDir(), nil, "--context", runSrc, "--platforms", "linux/amd64,linux/arm64",
		"--tag", reg.Ref("run:1"), "--push", "--insecure-registry", reg.Host, "--scan=false")
	line := res.errorLine()
	if res.Code != 3 || !strings.Contains(line, "Dockerfile:2") || !strings.Contains(line, "linux/arm64") ||
		!strings.Contains(line, "docker/setup-qemu-action") {
		t.Errorf("RUN for arm64: want exit 3 with Dockerfile:2, the platform and the way out; got %s", res)
	}
	if _, err := remote.Head(mustRef(t, reg.Ref("run:1"))); err == nil {
		t.Errorf("%s was pushed after a failed build", reg.Ref("run:1"))
	}
}

// mustRef parses ref, which may be on the plain-HTTP test registry.
func mustRef(t *testing.T, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
