package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/intesys/ship-action/internal/layer"
	"github.com/intesys/ship-action/internal/rootfs"
)

// DiffIDAnnotation is the annotation of a cache entry's layer descriptor
// that holds the layer's diff ID, so that a lookup reads one manifest and
// nothing else.
const DiffIDAnnotation = "org.intesys.ship.cache.diffid"

// TopLevelAnnotation is the annotation of a cache entry's layer
// descriptor that lists the layer's top-level names (JSON), so that a
// build can tell without reading the layer that a path is not in it.
const TopLevelAnnotation = "org.intesys.ship.cache.toplevel"

// cacheTagPrefix starts the tags of cache entries: "run-" and the key.
const cacheTagPrefix = "run-"

// validKey is what a cache key must look like: a tag holds it.
var validKey = regexp.MustCompile(`^[a-f0-9]{64}$`)

// LayerCache keeps layers in a repository of a registry (the cache-repo
// input), one ordinary single-layer OCI image per cache key, tagged
// run-<key>: its config lists the layer's diff ID, and so does an
// annotation on the layer's descriptor. Any registry holds such images.
// A hit costs one manifest GET; the layer's blob is read only when the
// build needs its files, and a push to another repository of the same
// registry mounts it instead of uploading it.
type LayerCache struct {
	c    *Client
	repo name.Repository
}

// LayerCache returns the layer cache held in repo ("ghcr.io/org/app/cache").
func (c *Client) LayerCache(repo string) (*LayerCache, error) {
	r, err := name.NewRepository(repo, c.nameOptions(registryOf(repo))...)
	if err != nil {
		return nil, fmt.Errorf("parsing cache repository %q: %w", repo, err)
	}
	c.mu.Lock()
	c.pushRegistries[r.RegistryStr()] = true
	c.mu.Unlock()
	return &LayerCache{c: c, repo: r}, nil
}

// registryOf returns the registry part of a repository reference, for the
// insecure-registry options.
func registryOf(repo string) string {
	r, err := name.NewRepository(repo, name.Insecure)
	if err != nil {
		return ""
	}
	return r.RegistryStr()
}

// Repository is the cache repository.
func (lc *LayerCache) Repository() string { return lc.repo.String() }

// Get returns the layer cached under key; ok is false when there is none.
// The layer's blob is not read now.
func (lc *LayerCache) Get(ctx context.Context, key string) (l v1.Layer, ok bool, err error) {
	if !validKey.MatchString(key) {
		return nil, false, fmt.Errorf("invalid cache key %q", key)
	}
	reg := lc.repo.RegistryStr()
	cred, err := lc.c.resolve(reg, lc.c.pushRegistriesCopy())
	if err != nil {
		return nil, false, lc.c.scrub(err)
	}
	tag := lc.repo.Tag(cacheTagPrefix + key)
	opts := lc.c.remoteOptions(ctx, cred.auth)
	desc, err := remote.Get(tag, opts...)
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			return nil, false, nil
		}
		return nil, false, lc.c.describe(err, tag.String(), reg, cred.source, false)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil || len(m.Layers) != 1 {
		return nil, false, nil // not an entry ship wrote: a miss
	}
	ld := m.Layers[0]
	diffID, err := v1.NewHash(ld.Annotations[DiffIDAnnotation])
	if err != nil {
		return nil, false, nil
	}
	ref := lc.repo.Digest(ld.Digest.String())
	lc.c.remember(reg, lc.repo, ld.Digest)
	var top []string
	if v, ok := ld.Annotations[TopLevelAnnotation]; ok {
		if json.Unmarshal([]byte(v), &top) != nil {
			top = nil
		}
	}
	rl := &cachedLayer{desc: ld, diffID: diffID, top: top, open: func() (io.ReadCloser, error) {
		l, err := remote.Layer(ref, opts...)
		if err != nil {
			return nil, lc.c.describe(err, ref.String(), reg, cred.source, false)
		}
		return l.Compressed()
	}}
	return &remote.MountableLayer{Layer: rl, Reference: ref}, true, nil
}

// Put stores l under key: its blob (mounted when the registry has it in
// another repository ship knows of), a config naming its diff ID, and the
// manifest tagged run-<key>.
func (lc *LayerCache) Put(ctx context.Context, key string, l v1.Layer) error {
	if !validKey.MatchString(key) {
		return fmt.Errorf("invalid cache key %q", key)
	}
	desc, err := partial.Descriptor(l)
	if err != nil {
		return err
	}
	diffID, err := l.DiffID()
	if err != nil {
		return err
	}
	digest := desc.Digest
	reg := lc.repo.RegistryStr()
	cred, err := lc.c.resolve(reg, lc.c.pushRegistriesCopy())
	if err != nil {
		return lc.c.scrub(err)
	}
	opts := lc.c.remoteOptions(ctx, cred.auth)
	tag := lc.repo.Tag(cacheTagPrefix + key)
	if err := remote.WriteLayer(lc.repo, l, opts...); err != nil {
		return lc.c.describe(err, tag.String(), reg, cred.source, true)
	}
	lc.c.remember(reg, lc.repo, digest)

	cfg, err := json.Marshal(v1.ConfigFile{
		OS: "linux", Architecture: "unknown",
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
	})
	if err != nil {
		return err
	}
	cfgLayer := static.NewLayer(cfg, types.OCIConfigJSON)
	if err := remote.WriteLayer(lc.repo, cfgLayer, opts...); err != nil {
		return lc.c.describe(err, tag.String(), reg, cred.source, true)
	}
	cfgDigest, _ := cfgLayer.Digest()
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cfgDigest, Size: int64(len(cfg))},
		Layers: []v1.Descriptor{{MediaType: desc.MediaType, Digest: digest, Size: desc.Size,
			Annotations: layerAnnotations(diffID, l)}},
		Annotations: map[string]string{"org.opencontainers.image.description": "ship layer cache entry"},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := remote.Put(tag, rawManifest{raw: raw, mt: types.OCIManifestSchema1}, opts...); err != nil {
		return lc.c.describe(err, tag.String(), reg, cred.source, true)
	}
	return nil
}

// layerAnnotations are the annotations of a cache entry's layer: its diff
// ID and, when known, its top-level names.
func layerAnnotations(diffID v1.Hash, l v1.Layer) map[string]string {
	a := map[string]string{DiffIDAnnotation: diffID.String()}
	if top := rootfs.TopLevelNames(l); top != nil {
		if b, err := json.Marshal(top); err == nil {
			a[TopLevelAnnotation] = string(b)
		}
	}
	return a
}

// pushRegistriesCopy returns the registries credentials given without a
// registry apply to.
func (c *Client) pushRegistriesCopy() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]bool, len(c.pushRegistries))
	for r := range c.pushRegistries {
		out[r] = true
	}
	return out
}

// cachedLayer is a layer of a cache entry: its digests and size are known
// from the manifest; the blob is fetched on each read.
type cachedLayer struct {
	desc   v1.Descriptor
	diffID v1.Hash
	top    []string // nil: unknown
	open   func() (io.ReadCloser, error)
}

// TopLevelNames returns the layer's top-level names from the entry, nil
// when it did not record them.
func (l *cachedLayer) TopLevelNames() []string { return l.top }

func (l *cachedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *cachedLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *cachedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *cachedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *cachedLayer) Compressed() (io.ReadCloser, error)  { return l.open() }

// Uncompressed returns the tar, decompressed as it is read.
func (l *cachedLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.open()
	if err != nil {
		return nil, err
	}
	return layer.Gunzip(rc)
}
