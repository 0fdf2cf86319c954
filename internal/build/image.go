package build

import (
	"fmt"
	"maps"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// finalImage assembles the target stage as an OCI image, as BuildKit's
// exporter does: --label values added, the platform from the request, OCI
// media types for the manifest, the config and every layer (base layers
// keep their blobs: only their media type in the manifest changes, nothing
// is downloaded), created = the time of the last history entry.
func (b *builder) finalImage(t *stageResult) (v1.Image, error) {
	cfg := t.cfg.DeepCopy()
	if len(b.req.Labels) > 0 {
		if cfg.Config.Labels == nil {
			cfg.Config.Labels = make(map[string]string, len(b.req.Labels))
		}
		maps.Copy(cfg.Config.Labels, b.req.Labels)
	}
	p := b.platform
	sameOSArch := cfg.OS == p.OS && cfg.Architecture == p.Architecture
	if b.explicit || cfg.OS == "" || cfg.Architecture == "" {
		cfg.OS, cfg.Architecture = p.OS, p.Architecture
		if p.Variant != "" || !sameOSArch {
			cfg.Variant = p.Variant
		}
		if p.OSVersion != "" || !sameOSArch {
			cfg.OSVersion = p.OSVersion
		}
	}
	// As containerd's platforms.Normalize.
	if (cfg.Architecture == "amd64" && cfg.Variant == "v1") || (cfg.Architecture == "arm64" && cfg.Variant == "v8") {
		cfg.Variant = ""
	}
	if b.epoch != nil {
		// As BuildKit: new history entries are clamped to the epoch; entries
		// of the base image keep their times.
		for i := range cfg.History {
			if cfg.History[i].Created.After(*b.epoch) {
				cfg.History[i].Created = v1.Time{Time: b.epoch.UTC()}
			}
		}
	}
	cfg.Created = v1.Time{}
	for _, h := range cfg.History {
		if !h.Created.IsZero() {
			cfg.Created = h.Created
		}
	}
	cfg.RootFS.Type = "layers"

	layers, err := t.img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("assembling image: %d layers but %d diff IDs", len(layers), len(cfg.RootFS.DiffIDs))
	}
	adds := make([]mutate.Addendum, 0, len(layers))
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return nil, fmt.Errorf("reading layer media type: %w", err)
		}
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: ociLayerType(mt)})
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("assembling image: %w", err)
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("assembling image: %w", err)
	}
	return img, nil
}

// ociLayerType maps Docker layer media types to their OCI equivalents, as
// BuildKit does when it exports an OCI image.
func ociLayerType(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerLayer:
		return types.OCILayer
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	case types.DockerForeignLayer:
		return types.OCIRestrictedLayer
	}
	return mt
}
