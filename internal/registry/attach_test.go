package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/intesys/ship-action/internal/testbed"
)

const (
	inToto    = "application/vnd.in-toto+json"
	cycloneDX = "application/vnd.cyclonedx+json"
	// emptyDigest is the digest of "{}", the OCI empty descriptor.
	emptyDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
)

func testArtifacts() []Artifact {
	return []Artifact{
		{
			ArtifactType: inToto,
			MediaType:    inToto,
			Data:         []byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1"}`),
			Annotations:  map[string]string{"in-toto.io/predicate-type": "https://slsa.dev/provenance/v1"},
		},
		{
			ArtifactType: cycloneDX,
			MediaType:    cycloneDX,
			Data:         []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`),
			Annotations:  map[string]string{"org.opencontainers.image.created": "2026-11-27T08:00:00Z"},
		},
	}
}

// referrersRegistry returns ggcr's in-memory registry with the referrers
// API, behind a recorder; wrap, when not nil, sits in between.
func referrersRegistry(t *testing.T, wrap func(http.Handler) http.Handler) (string, *recorder) {
	t.Helper()
	var h http.Handler = ggcrregistry.New(ggcrregistry.Logger(discardLogger()), ggcrregistry.WithReferrersSupport(true))
	if wrap != nil {
		h = wrap(h)
	}
	rec := &recorder{next: h}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), rec
}

// ociManifestSchema compiles the OCI image manifest schema (v1.1.1).
func ociManifestSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	dir := filepath.Join(testbed.SchemasDir(t), "oci")
	aliases := map[string][]string{
		"content-descriptor.json":    {"https://opencontainers.org/schema/descriptor", "https://opencontainers.org/schema/image/content-descriptor.json"},
		"defs-descriptor.json":       {"https://opencontainers.org/schema/image/descriptor/mediaType", "https://opencontainers.org/schema/defs-descriptor.json", "https://opencontainers.org/schema/image/defs-descriptor.json"},
		"defs.json":                  {"https://opencontainers.org/schema/defs.json", "https://opencontainers.org/schema/image/defs.json", "https://opencontainers.org/schema/image/descriptor/defs.json"},
		"image-manifest-schema.json": {"https://opencontainers.org/schema/image/manifest"},
	}
	c := jsonschema.NewCompiler()
	for file, urls := range aliases {
		for _, u := range urls {
			f, err := os.Open(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := jsonschema.UnmarshalJSON(f)
			f.Close()
			if err != nil {
				t.Fatalf("parsing %s: %v", file, err)
			}
			if err := c.AddResource(u, doc); err != nil {
				t.Fatalf("adding %s as %s: %v", file, u, err)
			}
		}
	}
	sch, err := c.Compile("https://opencontainers.org/schema/image/manifest")
	if err != nil {
		t.Fatalf("compiling the OCI manifest schema: %v", err)
	}
	return sch
}

// checkArtifact reads the artifact manifest repo@d and checks it against a
// and subject.
// attachChecked attaches arts to subject, expects one digest per artifact,
// checks each artifact's manifest (checkArtifact) and returns the
// subject's reference and the digests.
func attachChecked(t *testing.T, c *Client, sch *jsonschema.Schema, subject string, arts ...Artifact) (name.Digest, []v1.Hash) {
	t.Helper()
	digests, err := c.Attach(context.Background(), subject, arts...)
	if err != nil {
		t.Fatalf("Attach to %s: %v", subject, err)
	}
	if len(digests) != len(arts) {
		t.Fatalf("Attach to %s returned %v, want %d digests", subject, digests, len(arts))
	}
	ref, err := name.NewDigest(subject)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range arts {
		checkArtifact(t, sch, ref.Context(), digests[i], a, *desc)
	}
	return ref, digests
}

func checkArtifact(t *testing.T, sch *jsonschema.Schema, repo name.Repository, d v1.Hash, a Artifact, subject v1.Descriptor) {
	t.Helper()
	desc, err := remote.Get(repo.Digest(d.String()))
	if err != nil {
		t.Fatalf("reading artifact %s: %v", d, err)
	}
	if desc.MediaType != types.OCIManifestSchema1 {
		t.Errorf("artifact %s: media type %s", d, desc.MediaType)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(desc.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("artifact manifest does not validate against the OCI schema: %v\n%s", err, desc.Manifest)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.MediaType != types.OCIManifestSchema1 || m.ArtifactType != a.ArtifactType {
		t.Errorf("artifact %s: schemaVersion %d mediaType %q artifactType %q", d, m.SchemaVersion, m.MediaType, m.ArtifactType)
	}
	if m.Config.MediaType != types.OCIEmptyJSON || m.Config.Digest.String() != emptyDigest || m.Config.Size != 2 || string(m.Config.Data) != "{}" {
		t.Errorf("artifact %s: config %+v, want the empty descriptor", d, m.Config)
	}
	if m.Subject == nil || m.Subject.Digest != subject.Digest || m.Subject.Size != subject.Size || m.Subject.MediaType != subject.MediaType {
		t.Errorf("artifact %s: subject %+v, want %+v", d, m.Subject, subject)
	}
	if !maps.Equal(m.Annotations, a.Annotations) {
		t.Errorf("artifact %s: annotations %v, want %v", d, m.Annotations, a.Annotations)
	}
	if len(m.Layers) != 1 || string(m.Layers[0].MediaType) != a.MediaType || m.Layers[0].Size != int64(len(a.Data)) {
		t.Fatalf("artifact %s: layers %+v", d, m.Layers)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	for _, blob := range []struct {
		h    v1.Hash
		want []byte
	}{{m.Layers[0].Digest, a.Data}, {m.Config.Digest, []byte("{}")}} {
		l, err := img.LayerByDigest(blob.h)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("reading blob %s: %v", blob.h, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, blob.want) {
			t.Errorf("blob %s: %q (%v), want %q", blob.h, got, err, blob.want)
		}
	}
}

// checkReferrers asserts that the referrers of subject are exactly want
// (digest → artifact type). An empty artifact type in want is not
// compared.
func checkReferrers(t *testing.T, subject name.Digest, want map[v1.Hash]string) {
	t.Helper()
	idx, err := remote.Referrers(subject)
	if err != nil {
		t.Fatalf("listing the referrers of %s: %v", subject, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	got := map[v1.Hash]string{}
	for _, m := range im.Manifests {
		got[m.Digest] = m.ArtifactType
		if w, ok := want[m.Digest]; ok && w == "" {
			got[m.Digest] = ""
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("referrers of %s: %v, want %v", subject, got, want)
	}
}

// fallbackTag is the referrers tag of d ("sha256-<hex>").
func fallbackTag(d name.Digest) name.Tag {
	return d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1))
}

// TestAttachFallbackRegistry attaches a provenance statement and an SBOM
// to an image and to an index on the CNCF distribution registry, which has
// no referrers API: the referrers tag lists them, the image's tag is
// untouched, attaching again changes nothing, and a missing subject is
// named in the error.
func TestAttachFallbackRegistry(t *testing.T) {
	t.Parallel()
	reg := testbed.StartRegistry(t)
	ctx := context.Background()
	c := newClient(t, WithInsecure(reg.Host))
	sch := ociManifestSchema(t)
	arts := testArtifacts()

	imgDigest, err := c.Push(ctx, randomImage(t, 1), []string{reg.Ref("app:1")})
	if err != nil {
		t.Fatal(err)
	}
	subject := reg.Ref("app@" + imgDigest.String())
	subjRef, digests := attachChecked(t, c, sch, subject, arts...)
	if digests[0] == digests[1] {
		t.Fatalf("Attach returned %v, want two digests", digests)
	}
	checkReferrers(t, subjRef, map[v1.Hash]string{digests[0]: inToto, digests[1]: cycloneDX})

	// The fallback tag is an OCI index of the two artifacts.
	fb, err := remote.Get(fallbackTag(subjRef))
	if err != nil {
		t.Fatalf("reading the referrers tag: %v", err)
	}
	if fb.MediaType != types.OCIImageIndex {
		t.Errorf("referrers tag: media type %s, want an OCI index", fb.MediaType)
	}
	fbIdx, err := fb.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	if im, err := fbIdx.IndexManifest(); err != nil || len(im.Manifests) != 2 {
		t.Errorf("referrers tag: %+v (%v), want two entries", im, err)
	}

	// The image's tag still names the image.
	subjDesc, err := remote.Head(subjRef)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(reg.Ref("app:1"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := remote.Head(tag); err != nil || d.Digest != imgDigest || d.MediaType != subjDesc.MediaType {
		t.Errorf("app:1 after Attach: %+v (%v), want %s", d, err, imgDigest)
	}

	// Attaching the same artifacts again gives the same digests and no
	// new referrers.
	again, err := c.Attach(ctx, subject, arts...)
	if err != nil || len(again) != 2 || again[0] != digests[0] || again[1] != digests[1] {
		t.Errorf("attaching again: %v (%v), want %v", again, err, digests)
	}
	checkReferrers(t, subjRef, map[v1.Hash]string{digests[0]: inToto, digests[1]: cycloneDX})

	// An index as subject.
	idx, err := random.Index(256, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	idxTag, err := name.NewTag(reg.Ref("multi:1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(idxTag, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest := digestOf(t, idx)
	idxSubject := reg.Ref("multi@" + idxDigest.String())
	idxRef, idxDigests := attachChecked(t, c, sch, idxSubject, arts[0])
	checkReferrers(t, idxRef, map[v1.Hash]string{idxDigests[0]: inToto})
	if d, err := remote.Head(idxTag); err != nil || d.Digest != idxDigest {
		t.Errorf("multi:1 after Attach: %+v (%v), want %s", d, err, idxDigest)
	}
	if _, err := remote.Head(fallbackTag(idxRef)); err != nil {
		t.Errorf("no referrers tag for the index: %v", err)
	}

	// A subject that is not there.
	missing := reg.Ref("app@sha256:" + strings.Repeat("0", 64))
	_, err = c.Attach(ctx, missing, arts...)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "not found") ||
		!strings.Contains(err.Error(), inToto) || strings.Contains(err.Error(), "\n") {
		t.Errorf("missing subject: %v, want one line naming %s and the artifact type", err, missing)
	}
}

// TestAttachReferrersAPI attaches to a registry with the referrers API:
// the registry lists the artifacts and no referrers tag is written.
func TestAttachReferrersAPI(t *testing.T) {
	t.Parallel()
	host, rec := referrersRegistry(t, nil)
	ctx := context.Background()
	c := newClient(t)
	imgDigest, err := c.Push(ctx, randomImage(t, 1), []string{host + "/app:1"})
	if err != nil {
		t.Fatal(err)
	}
	subject := host + "/app@" + imgDigest.String()
	rec.reset()
	arts := testArtifacts()
	subjRef, digests := attachChecked(t, c, ociManifestSchema(t), subject, arts...)
	// ggcr's registry lists config.mediaType as the artifactType, whatever
	// the manifest's artifactType (pkg/registry/manifest.go,
	// handleReferrers): compare the digests only; checkArtifact checked
	// the manifests' artifactType.
	checkReferrers(t, subjRef, map[v1.Hash]string{digests[0]: "", digests[1]: ""})

	tagPath := "/v2/app/manifests/" + fallbackTag(subjRef).TagStr()
	if n := rec.count(func(q request) bool { return q.method == http.MethodPut && q.path == tagPath }); n != 0 {
		t.Errorf("%d PUTs of the referrers tag on a registry with the referrers API", n)
	}
	if n := rec.count(func(q request) bool {
		return q.method == http.MethodPut && strings.Contains(q.path, "/manifests/sha256:")
	}); n != 2 {
		t.Errorf("%d manifest PUTs by digest, want 2: %+v", n, rec.all())
	}
	if _, err := remote.Head(fallbackTag(subjRef)); err == nil {
		t.Error("a referrers tag exists on a registry with the referrers API")
	}
	if d, err := remote.Head(mustTag(t, host+"/app:1")); err != nil || d.Digest != imgDigest {
		t.Errorf("app:1 after Attach: %+v (%v), want %s", d, err, imgDigest)
	}
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// TestAttachRefusals covers what Attach refuses before writing anything,
// and an auth failure that must name the registry and not leak the
// password.
func TestAttachRefusals(t *testing.T) {
	t.Parallel()
	host, rec := referrersRegistry(t, requireAuth("user", "right-pass", false))
	ctx := context.Background()
	good := newClient(t, WithCredentials(host, "user", "right-pass"))
	imgDigest, err := good.Push(ctx, randomImage(t, 1), []string{host + "/app:1"})
	if err != nil {
		t.Fatal(err)
	}
	subject := host + "/app@" + imgDigest.String()
	art := testArtifacts()[0]

	if d, err := good.Attach(ctx, subject); err != nil || d != nil {
		t.Errorf("no artifacts: %v, %v; want nothing", d, err)
	}
	rec.reset()
	for _, tc := range []struct {
		name    string
		subject string
		art     func(Artifact) Artifact
		want    string
	}{
		{"tag subject", host + "/app:1", nil, "must be a digest reference"},
		{"bad reference", "UPPER/app@sha256:00", nil, "parsing the reference"},
		{"no artifact type", subject, func(a Artifact) Artifact { a.ArtifactType = ""; return a }, `artifact type "" is not a media type`},
		{"bad layer media type", subject, func(a Artifact) Artifact { a.MediaType = "json"; return a }, `layer media type "json"`},
		{"no data", subject, func(a Artifact) Artifact { a.Data = nil; return a }, "has no data"},
	} {
		a := art
		if tc.art != nil {
			a = tc.art(a)
		}
		_, err := good.Attach(ctx, tc.subject, a)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.subject) {
			t.Errorf("%s: %v, want an error naming %s containing %q", tc.name, err, tc.subject, tc.want)
		}
	}
	if n := len(rec.all()); n != 0 {
		t.Errorf("refused attaches sent %d requests", n)
	}

	bad := newClient(t, WithCredentials(host, "user", "wrong-pass-123"))
	_, err = bad.Attach(ctx, subject, art)
	var ae *AuthError
	if !errors.As(err, &ae) || ae.Registry != host || ae.Source != SourceExplicit {
		t.Errorf("wrong password: %v, want an *AuthError for %s", err, host)
	}
	if err != nil && (strings.Contains(err.Error(), "wrong-pass-123") || !strings.Contains(err.Error(), subject)) {
		t.Errorf("wrong password: %q leaks the password or does not name the subject", err)
	}
}

func TestValidMediaType(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"application/vnd.in-toto+json":   true,
		"application/vnd.cyclonedx+json": true,
		"text/spdx":                      true,
		"":                               false,
		"json":                           false,
		"application/":                   false,
		"/json":                          false,
		"application/json/x":             false,
		"application/-json":              false,
		"application/json; charset=utf8": false,
		"application/" + strings.Repeat("a", 128): false,
	} {
		if got := validMediaType(s); got != want {
			t.Errorf("validMediaType(%q) = %v, want %v", s, got, want)
		}
	}
}
