package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/intesys/ship-action/internal/copier"
	"github.com/intesys/ship-action/internal/dockerfile"
	"github.com/intesys/ship-action/internal/sandbox"
)

// Build builds req and returns the image of the target stage. Only the
// stages the target needs are built (and only their base images resolved);
// independent stages are built concurrently. Every error caused by a line
// of the Dockerfile is a *dockerfile.Error.
func Build(ctx context.Context, req Request, opts ...Option) (*Result, error) {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("configuring build: %w", err)
		}
	}
	data, err := os.ReadFile(req.DockerfilePath)
	if err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	name := req.DockerfileName
	if name == "" {
		name = filepath.Base(req.DockerfilePath)
	}
	df, err := dockerfile.Parse(data, name)
	if err != nil {
		return nil, err
	}
	platform := req.Platform
	explicitPlatform := platform.OS != "" || platform.Architecture != ""
	if !explicitPlatform {
		platform = dockerfile.HostPlatform()
	}
	if platform.OS == "" {
		platform.OS = "linux"
	}
	targetName := req.Target
	if targetName == "" {
		targetName = df.Stages[len(df.Stages)-1].Name
	}
	globals, err := df.GlobalArgs(req.BuildArgs, dockerfile.HostPlatform(), platform, targetName)
	if err != nil {
		return nil, err
	}
	plan, err := df.Resolve(globals, req.Target)
	if err != nil {
		var dfErr *dockerfile.Error
		if errors.As(err, &dfErr) {
			return nil, err
		}
		return nil, fmt.Errorf("resolving build target: %w", err)
	}

	epoch := req.SourceDateEpoch
	if epoch == nil {
		// As BuildKit, SOURCE_DATE_EPOCH may also come as a build arg.
		if v, ok := req.BuildArgs["SOURCE_DATE_EPOCH"]; ok && v != "" {
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("invalid SOURCE_DATE_EPOCH build arg %q: %w", v, err)
			}
			t := time.Unix(sec, 0).UTC()
			epoch = &t
		}
	}

	tmp := o.cacheDir
	if tmp == "" {
		tmp = os.TempDir()
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("creating temporary directory: %w", err)
	}
	cacheBase, err := absTemp(tmp)
	if err != nil {
		return nil, err
	}
	ClearStaleTempDirs(cacheBase, buildDirPattern, o.logger)
	tmp, removeTmp, err := MakeTempDir(cacheBase, buildDirPattern)
	if err != nil {
		return nil, err
	}
	defer func() {
		if o.deferCleanup != nil {
			o.deferCleanup(removeTmp)
			return
		}
		removeTmp()
	}()
	if o.cacheDir == "" {
		// Without a cache directory, cache mounts last one build.
		cacheBase = tmp
	}
	// RUN processes and extractions stop as soon as a stage fails.
	runCtx, cancelRuns := context.WithCancel(ctx)
	defer cancelRuns()

	b := &builder{
		req:       req,
		opts:      o,
		df:        df,
		plan:      plan,
		globals:   globals,
		platform:  platform,
		explicit:  explicitPlatform,
		tmpDir:    tmp,
		cacheBase: cacheBase,
		runCtx:    runCtx,
		storeCtx:  ctx,
		epoch:     epoch,
		runs:      make([]*stageRun, len(plan.Stages)),
		images:    map[string]*imageRun{},
	}
	if o.layerCacheDir != "" {
		if b.cache, err = newLayerCache(o.layerCacheDir); err != nil {
			return nil, err
		}
	}
	b.keyed = b.cache != nil || o.store != nil
	// Layers go to the layer store while the build goes on; Build returns
	// once they are there (or failed, which is only logged).
	defer b.storeWait.Wait()
	// Base cache entries are made from spooled layers while the build goes
	// on (baseFill); Build returns once they are there.
	defer b.fillWait.Wait()
	for i := range b.runs {
		b.runs[i] = &stageRun{}
	}
	defer func() {
		if b.bctx != nil {
			b.bctx.Close()
		}
	}()
	defer b.removeKept()

	// Not errgroup.WithContext: base images resolved here read their layers
	// lazily, after the group is done, with the context they were resolved
	// with; that must be the caller's, not one cancelled by Wait.
	var eg errgroup.Group
	for _, s := range plan.Needed {
		eg.Go(func() error {
			_, err := b.stage(ctx, s)
			if err != nil {
				cancelRuns()
			}
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, b.firstError(err)
	}
	target, err := b.stage(ctx, plan.Target)
	if err != nil {
		return nil, err
	}
	img, err := b.finalImage(target)
	if err != nil {
		return nil, err
	}
	res := &Result{Image: img, Layers: target.layers}
	for _, r := range b.runs {
		if r.res != nil {
			res.Stages = append(res.Stages, r.res.report)
		}
	}
	sort.SliceStable(res.Stages, func(i, j int) bool { return res.Stages[i].Index < res.Stages[j].Index })
	return res, nil
}

// builder holds the state of one Build call.
type builder struct {
	req      Request
	opts     options
	df       *dockerfile.Dockerfile
	plan     *dockerfile.Plan
	globals  *dockerfile.Env
	platform v1.Platform // the target platform
	explicit bool        // the platform was requested, not implied
	tmpDir   string
	epoch    *time.Time

	cache     *layerCache     // nil: no layer cache on this machine
	keyed     bool            // RUN cache keys are computed (a layer cache or store is set)
	storeWait sync.WaitGroup  // layers being put in opts.store
	storeCtx  context.Context //nolint:containedctx // Build's: layer store puts outlive a failed stage
	storeWarn sync.Once       // the layer store's failure is logged once
	fillWait  sync.WaitGroup  // base cache entries being made from spooled layers
	cacheBase string          // the directory that holds cache mounts
	runCtx    context.Context //nolint:containedctx // cancelled when a stage fails: stops RUN in the others
	modeOnce  sync.Once
	mode      sandbox.Mode

	baseHookOnce sync.Once // WithBaseImageHook's call

	firstUseBases map[string]bool // base cache keys first used by this build (baseFirstUse), under mu

	overlayOnce     sync.Once
	overlay         bool // RUN works on overlay mounts (useOverlay)
	overlayVolatile bool // with the "volatile" option

	runs []*stageRun

	mu      sync.Mutex
	images  map[string]*imageRun
	ctxOnce sync.Once
	bctx    *copier.Context
	bctxErr error

	cacheLocks map[string]*sync.Mutex // by cache mount directory; guarded by mu
	kept       []*keptRoot            // root file systems of finished stages; guarded by mu
}

type stageRun struct {
	once sync.Once
	res  *stageResult
	err  error
}

type imageRun struct {
	once sync.Once
	img  v1.Image
	err  error
}

// stage builds s once; concurrent callers wait for the same result.
func (b *builder) stage(ctx context.Context, s *dockerfile.ResolvedStage) (*stageResult, error) {
	r := b.runs[s.Index]
	r.once.Do(func() {
		r.res, r.err = b.buildStage(ctx, s)
	})
	return r.res, r.err
}

// firstError makes the reported error deterministic when several stages
// fail: the failure of the earliest stage wins over context cancellations.
func (b *builder) firstError(err error) error {
	for _, r := range b.runs {
		if r.err != nil && !errors.Is(r.err, context.Canceled) {
			return r.err
		}
	}
	return err
}

// image resolves ref through the ImageSource once per build.
func (b *builder) image(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error) {
	key := ref + "|" + dockerfile.FormatPlatform(platform)
	b.mu.Lock()
	r, ok := b.images[key]
	if !ok {
		r = &imageRun{}
		b.images[key] = r
	}
	b.mu.Unlock()
	r.once.Do(func() {
		if b.opts.source == nil {
			r.err = errors.New("no image source configured (only FROM scratch and stages can be built)")
			return
		}
		r.img, r.err = b.opts.source.Image(ctx, ref, platform)
	})
	return r.img, r.err
}

// buildContext opens the build context once, on first use.
func (b *builder) buildContext() (*copier.Context, error) {
	b.ctxOnce.Do(func() {
		b.bctx, b.bctxErr = copier.OpenContext(b.req.ContextDir, b.req.DockerfilePath, b.req.ContextExcludes...)
	})
	return b.bctx, b.bctxErr
}
