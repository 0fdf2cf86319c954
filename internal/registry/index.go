package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// MergedImage is one platform's image of an index PushIndex wrote.
type MergedImage struct {
	Ref      string // as given
	Digest   v1.Hash
	Platform v1.Platform
}

// PushIndex writes an OCI image index of the images refs name (one per
// platform, as pushed by per-platform builds, e.g. a CI matrix on native
// runners) under every tag, and returns its digest and its entries. A ref
// that names an index contributes its platform images. Each entry's
// platform comes from its image config; two images of one platform are an
// error. The images' blobs are mounted into the tags' repositories when
// they are on the same registry; nothing is downloaded but manifests and
// configs.
func (c *Client) PushIndex(ctx context.Context, refs, tags []string) (v1.Hash, []MergedImage, error) {
	if len(refs) == 0 || len(tags) == 0 {
		return v1.Hash{}, nil, errors.New("merging images: need images and tags")
	}
	pushRegs := c.pushRegistriesCopy()
	for _, t := range tags {
		tag, err := c.parseTag(t)
		if err != nil {
			return v1.Hash{}, nil, fmt.Errorf("parsing tag %q: %w", t, err)
		}
		pushRegs[tag.RegistryStr()] = true
	}
	var adds []mutate.IndexAddendum
	var merged []MergedImage
	seen := map[string]string{}
	add := func(ref string, img v1.Image, p v1.Platform) error {
		key := p.String()
		if prev, ok := seen[key]; ok {
			return fmt.Errorf("merging images: %s and %s are both %s", prev, ref, key)
		}
		seen[key] = ref
		d, err := img.Digest()
		if err != nil {
			return err
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		merged = append(merged, MergedImage{Ref: ref, Digest: d, Platform: p})
		return nil
	}
	for _, ref := range refs {
		r, err := c.parseReference(ref)
		if err != nil {
			return v1.Hash{}, nil, fmt.Errorf("parsing image %q: %w", ref, err)
		}
		reg := r.Context().RegistryStr()
		cred, err := c.resolve(reg, pushRegs)
		if err != nil {
			return v1.Hash{}, nil, c.scrub(err)
		}
		desc, err := remote.Get(r, c.remoteOptions(ctx, cred.auth)...)
		if err != nil {
			return v1.Hash{}, nil, c.describe(err, ref, reg, cred.source, false)
		}
		if desc.MediaType.IsIndex() {
			if err := c.addIndexEntries(ref, desc, add); err != nil {
				return v1.Hash{}, nil, err
			}
			continue
		}
		img, err := desc.Image()
		if err != nil {
			return v1.Hash{}, nil, fmt.Errorf("reading image %s: %w", ref, err)
		}
		p, err := platformOf(img, ref)
		if err != nil {
			return v1.Hash{}, nil, fmt.Errorf("merging images: %w", err)
		}
		if err := add(ref, img, p); err != nil {
			return v1.Hash{}, nil, err
		}
	}
	idx := newIndex(adds)
	digest, err := c.push(ctx, idx, tags, func(tag name.Tag, opts []remote.Option) error {
		return remote.WriteIndex(tag, idx, opts...)
	})
	return digest, merged, err
}

// addIndexEntries adds the platform images of the index desc names:
// entries without a platform, or with unknown/unknown (attestations), are
// left out.
func (c *Client) addIndexEntries(ref string, desc *remote.Descriptor, add func(string, v1.Image, v1.Platform) error) error {
	ii, err := desc.ImageIndex()
	if err != nil {
		return fmt.Errorf("reading index %s: %w", ref, err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return fmt.Errorf("reading index %s: %w", ref, err)
	}
	for _, m := range im.Manifests {
		if m.Platform == nil || m.Platform.OS == "unknown" || !m.MediaType.IsImage() {
			continue
		}
		img, err := ii.Image(m.Digest)
		if err != nil {
			return fmt.Errorf("reading %s@%s: %w", ref, m.Digest, err)
		}
		name := strings.SplitN(ref, "@", 2)[0] + "@" + m.Digest.String()
		if err := add(name, img, *m.Platform); err != nil {
			return err
		}
	}
	return nil
}

// platformOf is the platform img's config names; what names img in an
// error.
func platformOf(img v1.Image, what string) (v1.Platform, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Platform{}, fmt.Errorf("reading the config of %s: %w", what, err)
	}
	p := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
	if p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("%s has no platform in its config", what)
	}
	return p, nil
}

// newIndex is the OCI image index of adds, in their order.
func newIndex(adds []mutate.IndexAddendum) v1.ImageIndex {
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

// PlatformIndex is the OCI image index of imgs, one image per platform
// (each entry's platform from the image's config), in their order.
func PlatformIndex(imgs []v1.Image) (v1.ImageIndex, error) {
	var adds []mutate.IndexAddendum
	seen := map[string]bool{}
	for i, img := range imgs {
		p, err := platformOf(img, fmt.Sprintf("image %d", i+1))
		if err != nil {
			return nil, err
		}
		if seen[p.String()] {
			return nil, fmt.Errorf("two images of platform %s", p.String())
		}
		seen[p.String()] = true
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return newIndex(adds), nil
}

// PushPlatformIndex writes idx, an index of images (as PlatformIndex
// makes), under every tag: each repository gets the images by digest,
// with their blobs (mounted where the registry has them in another
// repository), then the index. Errors are as Push's.
func (c *Client) PushPlatformIndex(ctx context.Context, idx v1.ImageIndex, tags []string) (v1.Hash, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading index: %w", err)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading index: %w", err)
	}
	mt, err := idx.MediaType()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading index: %w", err)
	}
	return c.push(ctx, idx, tags, func(tag name.Tag, opts []remote.Option) error {
		for _, m := range im.Manifests {
			img, err := idx.Image(m.Digest)
			if err != nil {
				return fmt.Errorf("reading the image of %s: %w", m.Platform, err)
			}
			if err := c.writeImage(tag.Context().Digest(m.Digest.String()), img, opts); err != nil {
				return err
			}
		}
		return remote.Put(tag, rawManifest{raw: raw, mt: mt}, opts...)
	})
}
