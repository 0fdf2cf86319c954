package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Artifact is one blob to attach to an image as an OCI referrer, e.g. a
// provenance statement or an SBOM.
type Artifact struct {
	// ArtifactType is the manifest's artifactType, which referrer lists
	// show and filter on, e.g. "application/vnd.in-toto+json".
	ArtifactType string
	// MediaType is the media type of the single layer holding Data.
	MediaType string
	// Data is the artifact's content; it must not be empty.
	Data []byte
	// Annotations are the manifest's annotations, written as given (no
	// creation time is added: pass org.opencontainers.image.created to
	// have one).
	Annotations map[string]string
}

// emptyJSON is the content of the OCI empty descriptor.
const emptyJSON = "{}"

// Attach attaches arts to subject, the digest reference
// ("repository@sha256:...") of a pushed image or index, as OCI 1.1
// referrers: each artifact is an OCI image manifest with its artifactType,
// the empty config (application/vnd.oci.empty.v1+json), one layer with its
// data, and the subject's descriptor as subject, pushed by digest into the
// subject's repository. On a registry without the referrers API,
// go-containerregistry also adds it to the referrers tag
// ("sha256-<hex>", an index). Nothing is added to the subject itself.
// Credentials are resolved as for Push. Attach returns the digests of the
// artifacts' manifests, in order; when one fails, the digests of those
// attached before it and an error naming the subject and the artifact type.
// Attaching an identical artifact again changes nothing. No artifacts is no
// work.
func (c *Client) Attach(ctx context.Context, subject string, arts ...Artifact) ([]v1.Hash, error) {
	if len(arts) == 0 {
		return nil, nil
	}
	var kinds []string
	for _, a := range arts {
		kinds = append(kinds, a.ArtifactType)
	}
	fail := func(err error) ([]v1.Hash, error) {
		return nil, fmt.Errorf("attaching %s to %s: %w", strings.Join(kinds, ", "), subject, err)
	}
	ref, err := c.parseReference(subject)
	if err != nil {
		return fail(fmt.Errorf("parsing the reference: %w", err))
	}
	dig, ok := ref.(name.Digest)
	if !ok {
		return fail(errors.New("the subject must be a digest reference (repository@sha256:...)"))
	}
	for _, a := range arts {
		if err := a.validate(); err != nil {
			return fail(err)
		}
	}
	reg := dig.RegistryStr()
	pushRegs := c.pushRegistriesCopy()
	pushRegs[reg] = true
	cred, err := c.resolve(reg, pushRegs)
	if err != nil {
		return fail(c.scrub(err))
	}
	opts := c.remoteOptions(ctx, cred.auth)
	got, err := remote.Get(dig, opts...)
	if err != nil {
		return fail(c.describe(err, subject, reg, cred.source, false))
	}
	subj := v1.Descriptor{MediaType: got.MediaType, Digest: got.Digest, Size: got.Size}

	var digests []v1.Hash
	for _, a := range arts {
		img, err := newArtifactImage(a, subj)
		if err != nil {
			return digests, fmt.Errorf("attaching %s to %s: %w", a.ArtifactType, subject, err)
		}
		d, err := img.Digest()
		if err != nil {
			return digests, fmt.Errorf("attaching %s to %s: %w", a.ArtifactType, subject, err)
		}
		target := dig.Context().Digest(d.String())
		if err := remote.Write(target, img, opts...); err != nil {
			return digests, fmt.Errorf("attaching %s to %s: %w", a.ArtifactType, subject, c.describe(err, target.String(), reg, cred.source, true))
		}
		c.opts.logger.Info("attached artifact", "subject", subject, "artifactType", a.ArtifactType, "digest", d.String(), "credentials", cred.source)
		digests = append(digests, d)
	}
	return digests, nil
}

// validate checks the fields an artifact manifest needs.
func (a Artifact) validate() error {
	if !validMediaType(a.ArtifactType) {
		return fmt.Errorf("artifact type %q is not a media type", a.ArtifactType)
	}
	if !validMediaType(a.MediaType) {
		return fmt.Errorf("artifact layer media type %q is not a media type", a.MediaType)
	}
	if len(a.Data) == 0 {
		return fmt.Errorf("artifact %s has no data", a.ArtifactType)
	}
	return nil
}

// validMediaType reports whether s is TYPE/SUBTYPE as the OCI descriptor
// schema allows: each part 1 to 127 of [A-Za-z0-9!#$&^_.+-], starting
// with a letter or digit.
func validMediaType(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && validMediaTypePart(typ) && validMediaTypePart(sub)
}

func validMediaTypePart(s string) bool {
	if s == "" || len(s) > 127 {
		return false
	}
	for i, r := range s {
		alnum := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if i == 0 && !alnum {
			return false
		}
		if !alnum && !strings.ContainsRune("!#$&^_.+-", r) {
			return false
		}
	}
	return true
}

// artifactImage is an artifact manifest as a v1.Image (through
// partial.CompressedToImage), so remote.Write uploads its blobs and puts
// the manifest. go-containerregistry has no way to set a manifest's
// artifactType, so the manifest is written here.
type artifactImage struct {
	manifest []byte
	config   v1.Layer // the empty JSON blob
	layer    v1.Layer
}

// newArtifactImage returns a as an OCI image manifest whose subject is subj.
func newArtifactImage(a Artifact, subj v1.Descriptor) (v1.Image, error) {
	config := static.NewLayer([]byte(emptyJSON), types.OCIEmptyJSON)
	layer := static.NewLayer(a.Data, types.MediaType(a.MediaType))
	configDesc, err := partial.Descriptor(config)
	if err != nil {
		return nil, err
	}
	configDesc.Data = []byte(emptyJSON)
	layerDesc, err := partial.Descriptor(layer)
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  a.ArtifactType,
		Config:        *configDesc,
		Layers:        []v1.Descriptor{*layerDesc},
		Annotations:   maps.Clone(a.Annotations),
		Subject:       &subj,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding the manifest: %w", err)
	}
	return partial.CompressedToImage(&artifactImage{manifest: raw, config: config, layer: layer})
}

// RawConfigFile implements partial.CompressedImageCore.
func (a *artifactImage) RawConfigFile() ([]byte, error) { return []byte(emptyJSON), nil }

// MediaType implements partial.CompressedImageCore.
func (a *artifactImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// RawManifest implements partial.CompressedImageCore.
func (a *artifactImage) RawManifest() ([]byte, error) { return a.manifest, nil }

// ConfigLayer returns the empty config blob, with its media type.
func (a *artifactImage) ConfigLayer() (v1.Layer, error) { return a.config, nil }

// LayerByDigest implements partial.CompressedImageCore.
func (a *artifactImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range []v1.Layer{a.layer, a.config} {
		if d, err := l.Digest(); err == nil && d == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("artifact has no blob %s", h)
}
