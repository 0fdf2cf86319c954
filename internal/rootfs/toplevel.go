package rootfs

import (
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TopLevelNamer is a layer that knows the first component of the name of
// every entry it holds without being read (layer.Layer, and layers of the
// layer caches, which record it): a View does not read such a layer for a
// path it cannot hold.
type TopLevelNamer interface {
	// TopLevelNames returns the names, sorted; nil when unknown.
	TopLevelNames() []string
}

// TopLevelNames returns l's top-level names when it knows them (looking
// through a remote.MountableLayer), nil otherwise.
func TopLevelNames(l v1.Layer) []string {
	if ml, ok := l.(*remote.MountableLayer); ok {
		l = ml.Layer
	}
	if n, ok := l.(TopLevelNamer); ok {
		return n.TopLevelNames()
	}
	return nil
}

// lacks reports whether a layer with top-level names top (nil: unknown)
// certainly holds nothing at or under the clean path p and hides nothing
// there: neither p's first component, nor its whiteout, nor an opaque
// marker of the root is among them.
func lacks(top []string, p string) bool {
	if top == nil || p == "" {
		return false
	}
	first, _, _ := strings.Cut(p, "/")
	for _, n := range []string{first, whiteoutPrefix + first, whiteoutPrefix + whiteoutPrefix + ".opq"} {
		if _, found := slices.BinarySearch(top, n); found {
			return false
		}
	}
	return true
}
