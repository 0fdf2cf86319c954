package build

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/sandbox"
)

// Option configures Build.
type Option func(*options) error

type options struct {
	source     ImageSource
	logger     *slog.Logger
	cacheDir   string
	httpClient *http.Client
	// sandboxMode forces how RUN is isolated (tests); 0: sandbox.Detect.
	sandboxMode sandbox.Mode
	// binfmtDir replaces /proc/sys/fs/binfmt_misc (tests); see withBinfmtDir.
	binfmtDir string
	// noRootFSCache: see WithoutRootFSCache.
	noRootFSCache bool
	// baseEntryFirstUse: see withBaseEntryOnFirstUse.
	baseEntryFirstUse bool
	// noOverlay: see WithoutOverlay.
	noOverlay bool
	// memRootLimit: see withMemoryRoot; 0: from the memory available.
	memRootLimit int64
	// memUpperLimit: see withMemoryUpper; 0: from the memory available.
	memUpperLimit int64
	// memAvailable: see withAvailableMemory; nil: availableMemory.
	memAvailable func() (int64, bool)
	// layerHook: see WithLayerHook.
	layerHook func(v1.Layer)
	// baseHook: see WithBaseImageHook.
	baseHook func(base v1.Image, instructions []string)
	// layerCacheDir: see WithLayerCache.
	layerCacheDir string
	// noCacheReuse: see WithoutCacheReuse.
	noCacheReuse bool
	// noCacheStages: see WithoutCacheReuse.
	noCacheStages []string
	// store: see WithLayerStore.
	store LayerStore
	// storeReadOnly: see WithLayerStore.
	storeReadOnly bool
	// deferCleanup: see WithDeferredCleanup.
	deferCleanup func(cleanup func())
}

// LayerStore is a layer cache outside the machine (a registry repository:
// registry.LayerCache), shared by the builds of every machine. Keys are
// the hex SHA-256 cache keys of RUN instructions.
type LayerStore interface {
	// Get returns the layer stored under key; ok is false when there is
	// none. The layer's content should be read only when it is used.
	Get(ctx context.Context, key string) (l v1.Layer, ok bool, err error)
	// Put stores l under key.
	Put(ctx context.Context, key string, l v1.Layer) error
}

// withSandboxMode forces the sandbox mode of RUN (a test hook).
func withSandboxMode(m sandbox.Mode) Option {
	return func(o *options) error { o.sandboxMode = m; return nil }
}

// WithImageSource sets where base images come from. Without it, only
// Dockerfiles whose stages start FROM scratch or another stage can be built.
func WithImageSource(src ImageSource) Option {
	return func(o *options) error {
		if src == nil {
			return errors.New("nil image source")
		}
		o.source = src
		return nil
	}
}

// WithLayerHook calls hook with every layer the build adds to the image
// it returns (the target stage and the stages it is built on) as it starts
// writing it: the layer given is the compressed stream as it is produced
// (see layer.WithStream; its digest is known once the stream has ended),
// so that a caller can upload it while the build goes on. hook must not
// block; it may be called from several goroutines.
func WithLayerHook(hook func(v1.Layer)) Option {
	return func(o *options) error { o.layerHook = hook; return nil }
}

// WithBaseImageHook calls hook once per build, as soon as the first of the
// stages the image is made of (the target and the stages it is built FROM)
// has resolved the image it starts FROM, before its first instruction,
// with that image and the names of the instructions those stages run after
// it, in order and upper case ("RUN", "COPY", "CMD", ...). A caller can work
// on the base image, e.g. analyse it for a scan, while the build extracts
// it and runs the instructions. Nothing is called when the stages start
// FROM scratch. hook must not block.
func WithBaseImageHook(hook func(base v1.Image, instructions []string)) Option {
	return func(o *options) error { o.baseHook = hook; return nil }
}

// WithDeferredCleanup lets Build return before the deletion of its
// temporary directory, which holds the root file systems of its stages
// (thousands of files: deleting them takes a moment). At its end, Build
// unmounts and unlocks what it used and hands the deletion to hand, which
// must call it, for example in a goroutine the program waits for before
// it exits, so that the deletion overlaps the push and the scan.
func WithDeferredCleanup(hand func(cleanup func())) Option {
	return func(o *options) error {
		if hand == nil {
			return errors.New("nil cleanup handler")
		}
		o.deferCleanup = hand
		return nil
	}
}

// WithLogger sets the logger for progress messages (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.logger = l; return nil }
}

// WithCacheDir sets the directory for temporary and cached data
// (default: a directory under os.TempDir removed when Build returns).
func WithCacheDir(dir string) Option {
	return func(o *options) error { o.cacheDir = dir; return nil }
}

// WithLayerCache keeps the layers RUN makes in dir between builds: a RUN
// whose cache key (the file system it starts from, by content, the
// command, environment, user, working directory and mounts) was built
// before is not run again; its layer is reused.
func WithLayerCache(dir string) Option {
	return func(o *options) error { o.layerCacheDir = dir; return nil }
}

// WithLayerStore looks RUN layers up in store when the local layer cache
// (WithLayerCache) misses, and, unless readOnly, stores the layers RUN
// makes there, in the background while the build goes on (Build returns
// once they are stored). A store that fails is logged and never fails the
// build.
func WithLayerStore(store LayerStore, readOnly bool) Option {
	return func(o *options) error {
		if store == nil {
			return errors.New("nil layer store")
		}
		o.store, o.storeReadOnly = store, readOnly
		return nil
	}
}

// WithoutCacheReuse runs every RUN even when the layer cache has its
// layer (docker build --no-cache), or, given stages (names or indexes),
// the RUNs of those stages (--no-cache-filter); the cache is still
// written.
func WithoutCacheReuse(stages ...string) Option {
	return func(o *options) error {
		if len(stages) == 0 {
			o.noCacheReuse = true
		}
		o.noCacheStages = append(o.noCacheStages, stages...)
		return nil
	}
}

// WithHTTPClient sets the client used by ADD <url> (default: http.DefaultClient).
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) error { o.httpClient = c; return nil }
}
