package scan

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/intesys/ship-action/internal/layer"

	"github.com/aquasecurity/trivy/pkg/cache"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
)

// trivyImage adapts a v1.Image to the image Trivy's artifact analyses: a
// v1.Image with a name, an ID and repository tags and digests.
type trivyImage struct {
	v1.Image
	name string
}

var _ ftypes.Image = (*trivyImage)(nil)

// Name returns the image reference given with WithImageName, else the ID.
func (i *trivyImage) Name() string {
	if i.name != "" {
		return i.name
	}
	id, err := i.ID()
	if err != nil {
		return "image"
	}
	return id
}

// ID returns the config digest, as Trivy does for remote images.
func (i *trivyImage) ID() (string, error) {
	h, err := i.ConfigName()
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// RepoTags returns the name when it is a tag reference.
func (i *trivyImage) RepoTags() []string {
	if t, err := name.NewTag(i.name, name.StrictValidation); err == nil && i.name != "" {
		return []string{t.String()}
	}
	return nil
}

// RepoDigests returns the name when it is a digest reference.
func (i *trivyImage) RepoDigests() []string {
	if d, err := name.NewDigest(i.name); err == nil && i.name != "" {
		return []string{d.String()}
	}
	return nil
}

// LayerByDiffID returns the layer in a form Trivy's artifact reads well.
// Trivy's artifact decides by reflection whether a layer is compressed
// (reflect.TypeOf(l).Elem(), a struct without an UncompressedLayer field),
// which panics on other kinds: layers it takes as uncompressed are returned
// as they are (Trivy does not ask for their digest, and wrapping them would
// make it compute one), every other layer is wrapped in a gzipLayer.
func (i *trivyImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDiffID(h)
	if err != nil {
		return nil, err
	}
	if t := reflect.TypeOf(l); t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		if _, uncompressed := t.Elem().FieldByName("UncompressedLayer"); uncompressed {
			return l, nil
		}
	}
	return &gzipLayer{Layer: l}, nil
}

// gzipLayer decompresses a gzip layer with pgzip (klauspost's inflater,
// decoding ahead in its own goroutine) instead of compress/gzip, which
// go-containerregistry's layers use: Trivy's walk of a layer reads the tar
// in one goroutine, and the inflater was the largest part of it.
type gzipLayer struct{ v1.Layer }

// Uncompressed returns the layer's tar.
func (l *gzipLayer) Uncompressed() (io.ReadCloser, error) {
	mt, err := l.MediaType()
	if err != nil || (mt != types.DockerLayer && mt != types.OCILayer) {
		return l.Layer.Uncompressed()
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	return layer.Gunzip(rc)
}

// countingCache records which layers were analysed (stored in the cache)
// during one scan.
type countingCache struct {
	cache.ArtifactCache

	mu      sync.Mutex
	diffIDs []string
}

// PutBlob stores the analysis of one layer and records its DiffID.
func (c *countingCache) PutBlob(ctx context.Context, blobID string, info ftypes.BlobInfo) error {
	c.mu.Lock()
	c.diffIDs = append(c.diffIDs, info.DiffID)
	c.mu.Unlock()
	return c.ArtifactCache.PutBlob(ctx, blobID, info)
}

func (c *countingCache) analysed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.diffIDs)
	slices.Sort(out)
	return out
}

// routeTrivyLogs makes slog's default logger, which Trivy logs through,
// send to l (Info demoted to Debug) and returns the function that restores
// the previous default.
func routeTrivyLogs(l *slog.Logger) func() {
	prev := slog.Default()
	slog.SetDefault(slog.New(demote{h: l.Handler()}))
	return func() { slog.SetDefault(prev) }
}

// demote is a slog.Handler that turns Info records into Debug records.
type demote struct{ h slog.Handler }

func (d demote) Enabled(ctx context.Context, lvl slog.Level) bool {
	return d.h.Enabled(ctx, demoted(lvl))
}

func (d demote) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demoted(r.Level)
	return d.h.Handle(ctx, r)
}

func (d demote) WithAttrs(as []slog.Attr) slog.Handler { return demote{h: d.h.WithAttrs(as)} }
func (d demote) WithGroup(g string) slog.Handler       { return demote{h: d.h.WithGroup(g)} }

func demoted(l slog.Level) slog.Level {
	if l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}
