package scan

import (
	"context"
	"log/slog"
	"reflect"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

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

// LayerByDiffID wraps a layer that is not a pointer in one: Trivy's artifact
// decides by reflection whether a layer is compressed
// (reflect.TypeOf(l).Elem()), which panics on other kinds.
func (i *trivyImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDiffID(h)
	if err != nil {
		return nil, err
	}
	if reflect.TypeOf(l).Kind() == reflect.Pointer {
		return l, nil
	}
	return &layer{Layer: l}, nil
}

type layer struct{ v1.Layer }

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
