package e2e

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestAttestations pushes an image with a scan and an SBOM: its
// base image is analysed for the scan while the RUN runs; its
// provenance and its SBOM are OCI referrers of the image (through the
// tag-schema fallback: the distribution registry has no referrers API),
// the provenance names the base image by digest and the public build
// arguments only, nothing holds the secret of the context, a second run
// with SOURCE_DATE_EPOCH attaches the same documents (no new referrer),
// and attestations=none attaches nothing.
func TestAttestations(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	reg := testbed.StartRegistry(t)
	baseDigest := testbed.PushImage(t, testbed.BusyboxImage(t), reg.Ref("base/busybox:1"))
	root := t.TempDir()
	src := filepath.Join(root, "src")
	const secret = "AKIAZ3MSHIPDEMOKEY7Q"
	writeTree(t, src, map[string]file{
		"Dockerfile": txt("FROM " + reg.Ref("base/busybox:1") + "\nARG VERSION\nARG API_TOKEN\n" +
			"COPY requirements.txt settings.conf /app/\nRUN echo built > /built\n"),
		"requirements.txt": txt("shipreq==1.5.0\n"),
		"settings.conf":    txt("aws_access_key_id = " + secret + "\n"),
	})
	cache := filepath.Join(root, "cache")
	testbed.FixtureDB(t, cache)
	tag := reg.Ref("att/app:1")
	args := []string{"--context", src, "--tag", tag, "--push", "--insecure-registry", reg.Host,
		"--scan", "--cache-dir", cache, "--skip-db-update", "--db-repository", "127.0.0.1:1/none/trivy-db:2",
		"--sbom", "cyclonedx", "--build-arg", "VERSION=1.2.3", "--build-arg", "API_TOKEN=tok-" + secret}
	epoch := []string{"SOURCE_DATE_EPOCH=1700000000"}
	res := runShipInTemp(t, ctx, root, append([]string{"SHIP_DEBUG=1"}, epoch...), args...)
	if res.Code != 0 {
		t.Fatalf("build: %s", res)
	}
	// The base was analysed while the RUN ran: the scan analysed only the
	// build's two layers.
	if !strings.Contains(res.Stderr, `msg="base image analysed during the build" layers=2`) ||
		!regexp.MustCompile(`msg=scanned .*layers=3 cached_layers=1 `).MatchString(res.Stderr) {
		t.Errorf("want the base analysed during the build and the scan to find it cached:\n%s", res.Stderr)
	}
	out := lastOutputs(t, res)
	subject := mustRef(t, reg.Ref("att/app@"+out.Digest)).(name.Digest)
	docs := referrerDocs(t, subject)
	if len(docs) != 2 {
		t.Fatalf("referrers of %s: %v, want provenance and SBOM", subject, keys(docs))
	}
	for typ, body := range docs {
		if strings.Contains(body, secret) {
			t.Errorf("the %s referrer holds the secret", typ)
		}
	}
	var st struct {
		PredicateType string `json:"predicateType"`
		Subject       []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		Predicate struct {
			BuildDefinition struct {
				ExternalParameters struct {
					Dockerfile string            `json:"dockerfile"`
					BuildArgs  map[string]string `json:"buildArgs"`
				} `json:"externalParameters"`
				ResolvedDependencies []struct {
					URI    string            `json:"uri"`
					Digest map[string]string `json:"digest"`
				} `json:"resolvedDependencies"`
			} `json:"buildDefinition"`
			RunDetails struct {
				Metadata map[string]any `json:"metadata"`
			} `json:"runDetails"`
		} `json:"predicate"`
	}
	if err := json.Unmarshal([]byte(docs["application/vnd.in-toto+json"]), &st); err != nil {
		t.Fatalf("provenance: %v\n%s", err, docs["application/vnd.in-toto+json"])
	}
	pd := st.Predicate.BuildDefinition
	if st.PredicateType != "https://slsa.dev/provenance/v1" || len(st.Subject) != 1 ||
		"sha256:"+st.Subject[0].Digest["sha256"] != out.Digest {
		t.Errorf("provenance: predicate %q, subject %+v, want SLSA v1 about %s", st.PredicateType, st.Subject, out.Digest)
	}
	if len(pd.ResolvedDependencies) != 1 || "sha256:"+pd.ResolvedDependencies[0].Digest["sha256"] != baseDigest.String() {
		t.Errorf("provenance dependencies %+v, want the base %s", pd.ResolvedDependencies, baseDigest)
	}
	if !onlyEntry(pd.ExternalParameters.BuildArgs, "VERSION", "1.2.3") || pd.ExternalParameters.Dockerfile == "" {
		t.Errorf("provenance parameters %+v, want VERSION only and the Dockerfile", pd.ExternalParameters)
	}
	if _, ok := st.Predicate.RunDetails.Metadata["startedOn"]; ok {
		t.Errorf("provenance has times with SOURCE_DATE_EPOCH: %v", st.Predicate.RunDetails.Metadata)
	}
	if !strings.Contains(docs["application/vnd.cyclonedx+json"], "shipreq") {
		t.Errorf("the SBOM referrer does not list shipreq")
	}
	// The SBOM attached is the SBOM file, byte for byte (one rendering:
	// CycloneDX has a serial number and a time).
	if file, err := os.ReadFile(filepath.Join(root, "ship-sbom.cdx.json")); err != nil || string(file) != docs["application/vnd.cyclonedx+json"] {
		t.Errorf("the SBOM file (%v) differs from the SBOM attached", err)
	}

	// Same inputs again: the same documents, no new referrer.
	if res := runShipInTemp(t, ctx, root, epoch, args...); res.Code != 0 {
		t.Fatalf("second build: %s", res)
	}
	if again := referrerDocs(t, subject); !slices.Equal(keys(again), keys(docs)) || again["application/vnd.in-toto+json"] != docs["application/vnd.in-toto+json"] {
		t.Errorf("second build: referrers %v, want the same two documents", keys(again))
	}

	// attestations=none: nothing attached.
	none := reg.Ref("att/none:1")
	res = runShipInTemp(t, ctx, root, nil, "--context", src, "--tag", none, "--push", "--insecure-registry", reg.Host,
		"--scan=false", "--attest", "none", "--build-arg", "VERSION=2")
	if res.Code != 0 {
		t.Fatalf("build with attestations none: %s", res)
	}
	noneOut := lastOutputs(t, res)
	if got := referrerDocs(t, mustRef(t, reg.Ref("att/none@"+noneOut.Digest)).(name.Digest)); len(got) != 0 {
		t.Errorf("attestations none: referrers %v", keys(got))
	}
}

// referrerDocs returns the referrers of subject: artifact type -> the
// content of the artifact's one layer.
func referrerDocs(t *testing.T, subject name.Digest) map[string]string {
	t.Helper()
	idx, err := remote.Referrers(subject)
	if err != nil {
		t.Fatalf("referrers of %s: %v", subject, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range im.Manifests {
		img, err := remote.Image(subject.Context().Digest(m.Digest.String()))
		if err != nil {
			t.Fatalf("referrer %s: %v", m.Digest, err)
		}
		mf, err := img.Manifest()
		if err != nil || mf.Subject == nil || mf.Subject.Digest.String() != subject.DigestStr() || len(mf.Layers) != 1 {
			t.Fatalf("referrer %s: manifest %+v (%v), want one layer about %s", m.Digest, mf, err, subject.DigestStr())
		}
		out[mf.ArtifactType] = layerText(t, img, mf.Layers[0].Digest)
	}
	return out
}

// layerText reads the blob d of img.
func layerText(t *testing.T, img v1.Image, d v1.Hash) string {
	t.Helper()
	l, err := img.LayerByDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// keys returns m's keys, sorted.
func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// onlyEntry says whether m is exactly {k: v}.
func onlyEntry(m map[string]string, k, v string) bool {
	return len(m) == 1 && m[k] == v
}
