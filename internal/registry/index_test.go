package registry

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/intesys/ship-action/internal/testbed"
)

// platformImage returns a random image whose config names platform p.
func platformImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img := randomImage(t, 1)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestPushIndex merges per-platform images pushed by separate builds
// into one index under two tags (two repositories) of the CNCF
// distribution registry, flattens an index given as input, and refuses
// two images of one platform.
func TestPushIndex(t *testing.T) {
	t.Parallel()
	reg := testbed.StartRegistry(t)
	ctx := context.Background()
	c := newClient(t, WithInsecure(reg.Host))
	amd := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm := v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	amdDigest, err := c.Push(ctx, platformImage(t, amd), []string{reg.Ref("app:amd64")})
	if err != nil {
		t.Fatal(err)
	}
	armDigest, err := c.Push(ctx, platformImage(t, arm), []string{reg.Ref("app:arm64")})
	if err != nil {
		t.Fatal(err)
	}
	tags := []string{reg.Ref("app:1"), reg.Ref("other/app:1")}
	digest, merged, err := c.PushIndex(ctx, []string{reg.Ref("app:amd64"), reg.Ref("app@" + armDigest.String())}, tags)
	if err != nil {
		t.Fatalf("PushIndex: %v", err)
	}
	if len(merged) != 2 || merged[0].Digest != amdDigest || merged[1].Digest != armDigest {
		t.Errorf("merged %+v", merged)
	}
	for _, tag := range tags {
		ref, err := name.ParseReference(tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Index(ref)
		if err != nil {
			t.Fatalf("reading %s: %v", tag, err)
		}
		if d, _ := idx.Digest(); d != digest {
			t.Errorf("%s: digest %s, want %s", tag, d, digest)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range im.Manifests {
			got = append(got, m.Platform.String()+"="+m.Digest.String())
		}
		want := []string{"linux/amd64=" + amdDigest.String(), "linux/arm64/v8=" + armDigest.String()}
		if !slices.Equal(got, want) {
			t.Errorf("%s: entries %v, want %v", tag, got, want)
		}
	}

	// An index as input gives its images; a second amd64 image is refused.
	if _, merged, err := c.PushIndex(ctx, []string{reg.Ref("app:1")}, []string{reg.Ref("app:copy")}); err != nil || len(merged) != 2 {
		t.Errorf("merging an index: %d images, %v", len(merged), err)
	}
	_, _, err = c.PushIndex(ctx, []string{reg.Ref("app:amd64"), reg.Ref("app:1")}, []string{reg.Ref("app:bad")})
	if err == nil || !strings.Contains(err.Error(), "are both linux/amd64") {
		t.Errorf("two amd64 images: %v, want a refusal", err)
	}
}

// TestPushPlatformIndex pushes the images of a one-run multi-platform
// build as an index under tags in two repositories: each repository gets
// the images by digest and the index, whose entries name the platforms
// of the images' configs in the order given.
func TestPushPlatformIndex(t *testing.T) {
	t.Parallel()
	reg := testbed.StartRegistry(t)
	ctx := context.Background()
	c := newClient(t, WithInsecure(reg.Host))
	amd := platformImage(t, v1.Platform{OS: "linux", Architecture: "amd64"})
	arm := platformImage(t, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})
	idx, err := PlatformIndex([]v1.Image{amd, arm})
	if err != nil {
		t.Fatal(err)
	}
	want, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	tags := []string{reg.Ref("app:1"), reg.Ref("app:latest"), reg.Ref("other/app:1")}
	got, err := c.PushPlatformIndex(ctx, idx, tags)
	if err != nil {
		t.Fatalf("PushPlatformIndex: %v", err)
	}
	if got != want {
		t.Errorf("digest %s, want %s", got, want)
	}
	for _, tag := range tags {
		ref, err := name.ParseReference(tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		ri, err := remote.Index(ref)
		if err != nil {
			t.Fatalf("reading %s: %v", tag, err)
		}
		if d, _ := ri.Digest(); d != want {
			t.Errorf("%s: digest %s, want %s", tag, d, want)
		}
		im, err := ri.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var plats []string
		for _, m := range im.Manifests {
			plats = append(plats, m.Platform.String())
			// Every image is readable from the tag's repository, with its layers.
			img, err := remote.Image(ref.Context().Digest(m.Digest.String()))
			if err != nil {
				t.Fatalf("%s@%s: %v", ref.Context(), m.Digest, err)
			}
			if err := validateLayers(img); err != nil {
				t.Errorf("%s@%s: %v", ref.Context(), m.Digest, err)
			}
		}
		if !slices.Equal(plats, []string{"linux/amd64", "linux/arm64/v8"}) {
			t.Errorf("%s: platforms %v", tag, plats)
		}
	}

	if _, err := PlatformIndex([]v1.Image{amd, amd}); err == nil || !strings.Contains(err.Error(), "two images of platform linux/amd64") {
		t.Errorf("two amd64 images: %v, want a refusal", err)
	}
}

// validateLayers reads every layer of img through to the end.
func validateLayers(img v1.Image) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
