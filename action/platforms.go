package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/intesys/ship-action/internal/build"
	"github.com/intesys/ship-action/internal/dockerfile"
	"github.com/intesys/ship-action/internal/provenance"
	"github.com/intesys/ship-action/internal/registry"
)

// builtImage is what a run built: one image, or with several platforms
// one image per platform and the OCI index of them.
type builtImage struct {
	results      []*build.Result           // one per platform, in the order given
	imageDigests []v1.Hash                 // the results' image digests
	bases        [][]provenance.Dependency // per platform: the images the build resolved
	index        v1.ImageIndex             // nil for one platform
	digest       v1.Hash                   // of the index, or of the one image
}

// platformIndexPusher writes an index of images built here; *registry.Client
// is one.
type platformIndexPusher interface {
	PushPlatformIndex(ctx context.Context, idx v1.ImageIndex, tags []string) (v1.Hash, error)
}

// buildPlatforms builds req for each platform, one after the other (the
// log stays readable, and a later platform finds in the layer cache what
// an earlier one stored), and with several platforms makes the index of
// the images. The options first apply to the first platform's build only.
func buildPlatforms(ctx context.Context, o options, src build.ImageSource, req build.Request, platforms []v1.Platform, opts, first []build.Option, log *slog.Logger) (*builtImage, error) {
	b := &builtImage{}
	var imgs []v1.Image
	for i, p := range platforms {
		if len(platforms) > 1 {
			log.Info("building for platform", "platform", platformName(p))
		}
		req.Platform = p
		rec := &recordingSource{ImageSource: src}
		popts := append(slices.Clone(opts), build.WithImageSource(rec))
		if i == 0 {
			popts = append(popts, first...)
		}
		res, err := o.build(ctx, req, popts...)
		if err == nil && (res == nil || res.Image == nil) {
			err = errors.New("building: no image produced")
		}
		if errors.Is(err, dockerfile.ErrUnknownTarget) {
			return nil, withCode(CodeUsage, err) // --target is a bad input, not a failed build
		}
		if err != nil {
			if len(platforms) > 1 && !strings.Contains(err.Error(), platformName(p)) {
				err = fmt.Errorf("%w (building for %s)", err, platformName(p))
			}
			return nil, withCode(CodeBuild, err)
		}
		d, err := res.Image.Digest()
		if err != nil {
			return nil, withCode(CodeBuild, fmt.Errorf("computing image digest: %w", err))
		}
		b.results = append(b.results, res)
		b.bases = append(b.bases, rec.resolved())
		b.imageDigests = append(b.imageDigests, d)
		imgs = append(imgs, res.Image)
	}
	b.digest = b.imageDigests[0]
	if len(imgs) == 1 {
		return b, nil
	}
	idx, err := registry.PlatformIndex(imgs)
	if err != nil {
		return nil, withCode(CodeBuild, fmt.Errorf("making the index: %w", err))
	}
	b.index = idx
	if b.digest, err = idx.Digest(); err != nil {
		return nil, withCode(CodeBuild, fmt.Errorf("computing index digest: %w", err))
	}
	return b, nil
}

// push writes the image, or the index with its images, under every tag.
func (b *builtImage) push(ctx context.Context, client imageClient, tags []string) (v1.Hash, error) {
	if b.index == nil {
		return client.Push(ctx, b.results[0].Image, tags)
	}
	ip, ok := client.(platformIndexPusher)
	if !ok {
		return v1.Hash{}, errors.New("pushing: this registry client cannot push an index")
	}
	return ip.PushPlatformIndex(ctx, b.index, tags)
}

// appendTo adds the image, or the index, to an OCI layout.
func (b *builtImage) appendTo(p layout.Path, opts ...layout.Option) error {
	if b.index == nil {
		return p.AppendImage(b.results[0].Image, opts...)
	}
	return p.AppendIndex(b.index, opts...)
}

// size is the bytes of every manifest, config and compressed layer.
func (b *builtImage) size() (int64, error) {
	var total int64
	if b.index != nil {
		raw, err := b.index.RawManifest()
		if err != nil {
			return 0, fmt.Errorf("reading index: %w", err)
		}
		total += int64(len(raw))
	}
	for _, res := range b.results {
		m, err := res.Image.Manifest()
		if err != nil {
			return 0, fmt.Errorf("reading image manifest: %w", err)
		}
		raw, err := res.Image.RawManifest()
		if err != nil {
			return 0, fmt.Errorf("reading image manifest: %w", err)
		}
		total += int64(len(raw)) + m.Config.Size
		for _, l := range m.Layers {
			total += l.Size
		}
	}
	return total, nil
}
