package registry

import (
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// mountHints wraps an image being pushed to registry so that remote.Write
// mounts the blobs known to be in another repository of that registry
// instead of uploading them. Layers that are already mountable from that
// registry (remote base layers) are left as they are.
type mountHints struct {
	v1.Image
	registry string
	from     map[v1.Hash]name.Repository
}

// Layers implements v1.Image.
func (m *mountHints) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = m.wrap(l)
	}
	return out, nil
}

// LayerByDigest implements v1.Image.
func (m *mountHints) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := m.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return m.wrap(l), nil
}

// ConfigLayer implements partial.WithConfigLayer.
func (m *mountHints) ConfigLayer() (v1.Layer, error) {
	l, err := partial.ConfigLayer(m.Image)
	if err != nil {
		return nil, err
	}
	return m.wrap(l), nil
}

func (m *mountHints) wrap(l v1.Layer) v1.Layer {
	if ml, ok := l.(*remote.MountableLayer); ok && ml.Reference.Context().RegistryStr() == m.registry {
		return l
	}
	if len(m.from) == 0 {
		return l
	}
	h, err := l.Digest()
	if err != nil {
		return l // a streaming layer: nothing is known about it
	}
	repo, ok := m.from[h]
	if !ok {
		return l
	}
	if ml, ok := l.(*remote.MountableLayer); ok {
		l = ml.Layer
	}
	return &remote.MountableLayer{Layer: l, Reference: repo.Digest(h.String())}
}

// rawManifest is a manifest to PUT under another tag; unlike a v1.Image it
// makes remote.Tag skip the blob existence checks.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

// RawManifest implements remote.Taggable.
func (r rawManifest) RawManifest() ([]byte, error) { return r.raw, nil }

// MediaType returns the manifest's media type.
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }
