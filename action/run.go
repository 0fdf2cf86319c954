package action

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sethvargo/go-githubactions"
	"golang.org/x/sync/errgroup"

	"github.com/intesys/ship-action/internal/build"
)

// Option configures Run.
type Option func(*options) error

// runDirPattern names the run's temporary directory (build.MakeTempDir).
const runDirPattern = "ship-"

type options struct {
	lookup   LookupEnv
	stdout   io.Writer
	logger   *slog.Logger // nil: text to stderr
	workDir  string       // where ship.env goes; "" the working directory
	tempBase string       // parent of the run's temp dir; "" os.TempDir
	build    builderFunc
	client   imageClient // nil: a registry client made from the Config
	stderr   io.Writer   // the findings table; default os.Stderr
}

// builderFunc is build.Build's signature, replaceable in tests.
type builderFunc func(ctx context.Context, req build.Request, opts ...build.Option) (*build.Result, error)

// imageClient resolves base images and pushes; *registry.Client is one.
type imageClient interface {
	build.ImageSource
	Push(ctx context.Context, img v1.Image, tags []string) (v1.Hash, error)
}

// WithEnv sets how Run reads the environment (GITHUB_ACTIONS, GITHUB_OUTPUT,
// GITLAB_CI, registry credentials...). Default: os.LookupEnv.
func WithEnv(lookup LookupEnv) Option {
	return func(o *options) error {
		if lookup == nil {
			return errors.New("nil environment lookup")
		}
		o.lookup = lookup
		return nil
	}
}

// WithStdout sets where the outputs (the final JSON line, GitHub workflow
// commands) and --help go. Default: os.Stdout.
func WithStdout(w io.Writer) Option {
	return func(o *options) error {
		if w == nil {
			return errors.New("nil stdout")
		}
		o.stdout = w
		return nil
	}
}

// WithLogger sets the logger for progress lines. Default: slog text lines
// on stderr. Known secrets are redacted from every record either way.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.logger = l
		return nil
	}
}

// withWorkDir sets the directory ship.env is written to.
func withWorkDir(dir string) Option {
	return func(o *options) error { o.workDir = dir; return nil }
}

// withTempDir sets the parent of the run's temporary directory.
func withTempDir(dir string) Option {
	return func(o *options) error { o.tempBase = dir; return nil }
}

// withBuilder replaces build.Build.
func withBuilder(f builderFunc) Option {
	return func(o *options) error { o.build = f; return nil }
}

// withStderr sets where the findings table goes.
func withStderr(w io.Writer) Option {
	return func(o *options) error { o.stderr = w; return nil }
}

// withClient replaces the registry client.
func withClient(c imageClient) Option {
	return func(o *options) error { o.client = c; return nil }
}

// Run builds the image cfg describes, writes it as an OCI image layout to
// cfg.Output (and a tarball to cfg.OutputTar when set), pushes it to every
// tag when cfg.Push, and writes the outputs: GitHub step outputs and job
// summary when GITHUB_ACTIONS=true, ship.env when GITLAB_CI=true, and
// always a JSON object as the last line of stdout.
//
// When cfg.Scan, the image is scanned (see internal/scan) while it is
// pushed, or before when cfg.ScanBeforePush (a failed gate then pushes
// nothing); the findings go to cfg.FindingsJSON, a table on stderr and the
// outputs. With cfg.ScanImage (ship scan IMAGE) nothing is built: that image
// is read from its registry and scanned.
//
// Errors are *ExitError values (CodeUsage, CodeBuild, CodePush, CodeScan,
// CodeGate, CodeInternal) with a one-line message free of secrets. Temporary files are
// removed before Run returns, also on error and cancellation.
func Run(ctx context.Context, cfg Config, opts ...Option) (err error) {
	o := options{lookup: os.LookupEnv, stdout: os.Stdout, stderr: os.Stderr, build: build.Build}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return withCode(CodeInternal, fmt.Errorf("configuring run: %w", err))
		}
	}
	if cfg.Help {
		if _, err := io.WriteString(o.stdout, Usage()); err != nil {
			return withCode(CodeInternal, fmt.Errorf("writing usage: %w", err))
		}
		return nil
	}

	env := func(k string) string { v, _ := o.lookup(k); return v }
	gha := githubactions.New(githubactions.WithWriter(o.stdout), githubactions.WithGetenv(env))
	sec := &secretSet{}
	if env("GITHUB_ACTIONS") == "true" {
		sec.onAdd = func(s string) error { return protect(func() { gha.AddMask(s) }) }
	}
	for _, s := range cfg.secrets() {
		if err := sec.add(s); err != nil {
			return withCode(CodeInternal, fmt.Errorf("masking secrets: %w", err))
		}
	}
	defer func() { err = sec.cleanError(err) }()

	base := o.logger
	if base == nil {
		base = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(env)}))
	}
	log := slog.New(&redactHandler{next: base.Handler(), secrets: sec})
	if len(cfg.MergeImages) > 0 {
		if err := cfg.Validate(); err != nil {
			return err
		}
		return mergeImages(ctx, cfg, o, gha, env, log, sec.maskFunc(log))
	}
	if cfg.ScanImage == "" {
		cfg.resolveFile()
	}
	// Findings name repository files relative to the checkout.
	cfg.workspace = cmp.Or(env("GITHUB_WORKSPACE"), env("CI_PROJECT_DIR"))
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.ScanImage == "" {
		if err := checkOutputs(cfg); err != nil {
			return err
		}
	}
	rep := startReports(ctx, cfg, o, gha, env, log)
	rec := &runRecord{}
	if cfg.ScanImage != "" {
		err = scanRemoteImage(ctx, cfg, o, log, sec.maskFunc(log), rec)
	} else {
		err = buildImage(ctx, cfg, o, log, sec, rec)
	}
	// Reports quote the error: it is cleaned of secrets first.
	defer newGitLabSections(env, o.stderr).start("report", "Reporting")()
	return rep.finish(ctx, rec, sec.cleanError(err))
}

// buildImage builds, writes, pushes and scans the image cfg describes,
// recording in rec what the reports show. A failed gate is not an error
// here: the reports decide the exit code.
func buildImage(ctx context.Context, cfg Config, o options, log *slog.Logger, sec *secretSet, rec *runRecord) error {
	env := func(k string) string { v, _ := o.lookup(k); return v }
	sections := newGitLabSections(env, o.stderr)
	// Secret values are read once, here, and masked before anything can
	// print them.
	buildSecrets, err := readSecrets(cfg.Secrets, o.lookup)
	if err != nil {
		return err
	}
	for _, v := range buildSecrets {
		if err := sec.add(string(v)); err != nil {
			return withCode(CodeInternal, fmt.Errorf("masking secrets: %w", err))
		}
	}
	excludes := contextExcludes(cfg)
	if len(excludes) > 0 {
		log.Debug("outputs inside the build context are left out of it", "paths", excludes)
	}
	log.Debug("configuration", "config", cfg)
	platforms := cfg.targetPlatforms()

	// A run killed before it could delete its directory (and unmount what
	// its build mounted there) left it behind: removed here.
	build.ClearStaleTempDirs(o.tempBase, runDirPattern, log)
	tmp, removeTmp, err := build.MakeTempDir(o.tempBase, runDirPattern)
	if err != nil {
		return withCode(CodeInternal, err)
	}
	defer removeTmp()

	agents, err := startSSHAgents(cfg.SSH, env, tmp)
	if err != nil {
		return withCode(CodeUsage, err)
	}
	defer agents.close()

	client := o.client
	if client == nil {
		c, err := newRegistryClient(cfg, o.lookup, log, sec.maskFunc(log))
		if err != nil {
			return withCode(CodeUsage, fmt.Errorf("configuring registry access: %w", err))
		}
		client = c
	}

	cacheDir := cfg.CacheDir
	if cacheDir == "" {
		cacheDir = tmp
	}
	req := build.Request{
		ContextDir:      cfg.Context,
		DockerfilePath:  cfg.File,
		Target:          cfg.Target,
		BuildArgs:       cfg.BuildArgs,
		Labels:          cfg.Labels,
		SourceDateEpoch: ciSourceDateEpoch(cfg, env, log),
		ContextExcludes: excludes,
		Secrets:         buildSecrets,
		SSH:             agents.sockets,
	}
	endBuild := sections.start("build", "Building "+dockerfilePath(cfg))
	log.Info("building", "context", cfg.Context, "file", cfg.File, "target", cfg.Target)
	start := time.Now()
	// The build's root file systems are deleted while the run goes on
	// (push, scan, attachments, outputs; not the reports, which come after
	// buildImage); buildImage returns once that is done.
	var cleanup sync.WaitGroup
	defer cleanup.Wait()
	buildOpts := []build.Option{
		build.WithLogger(log),
		build.WithCacheDir(cacheDir),
		build.WithDeferredCleanup(func(f func()) { cleanup.Go(f) }),
	}
	if cfg.CacheDir == "" {
		// A cache in a directory removed after the run only costs a copy.
		buildOpts = append(buildOpts, build.WithoutRootFSCache())
	} else {
		buildOpts = append(buildOpts, build.WithLayerCache(filepath.Join(cfg.CacheDir, build.LayerCacheSubdir)))
	}
	if cfg.NoCache {
		buildOpts = append(buildOpts, build.WithoutCacheReuse())
	}
	if len(cfg.NoCacheFilter) > 0 {
		buildOpts = append(buildOpts, build.WithoutCacheReuse(cfg.NoCacheFilter...))
	}
	buildOpts = append(buildOpts, layerStoreOptions(cfg, client, env, log)...)
	var uploads *earlyUploads
	// Layers go to the registry while they are written, unless a failed
	// scan must keep everything out of it (scan-before-push).
	if up, ok := client.(layerUploader); ok && cfg.Push && len(cfg.Tags) > 0 && !(cfg.Scan && cfg.ScanBeforePush) {
		uploads = startUploads(ctx, up, cfg.Tags[0], log)
		defer uploads.stop()
		buildOpts = append(buildOpts, build.WithLayerHook(uploads.add))
	}
	// The scanned image is the first platform's: its base is analysed
	// while the build runs.
	var first []build.Option
	ahead := startAheadScan(ctx, cfg, o.lookup, log)
	defer ahead.stop()
	if ahead != nil {
		first = append(first, build.WithBaseImageHook(ahead.hook))
	}
	b, err := buildPlatforms(ctx, o, client, req, platforms, buildOpts, first, log)
	endBuild()
	if cfg.CacheDir != "" {
		// The build is done with its caches: trim them while the run goes on.
		done := startPrune(cfg, start, log)
		defer func() { <-done }()
	}
	if err != nil {
		return err
	}
	res, digest := b.results[0], b.digest
	log.Info("built", "digest", digest.String(), "duration", time.Since(start).Round(time.Millisecond))
	rec.res = res

	if err := ctx.Err(); err != nil {
		return withCode(CodeBuild, err)
	}
	if cfg.Output != "" {
		log.Info("writing OCI image layout", "dir", cfg.Output)
		if err := writeLayout(cfg.Output, b.appendTo, cfg.Tags); err != nil {
			return withCode(CodeBuild, err)
		}
	}
	if cfg.OutputTar != "" {
		if err := ctx.Err(); err != nil {
			return withCode(CodeBuild, err)
		}
		log.Info("writing image tarball", "file", cfg.OutputTar)
		if err := writeTarball(cfg.OutputTar, res.Image, cfg.Tags); err != nil {
			return withCode(CodeBuild, err)
		}
	}

	// push and doScan open a section of their own with s; run together,
	// they log in one section around both and s is the zero
	// gitlabSections, which writes nothing.
	push := func(ctx context.Context, s gitlabSections) error {
		defer s.start("push", "Pushing "+strings.Join(cfg.Tags, ", "))()
		log.Info("pushing", "tags", strings.Join(cfg.Tags, ","))
		start := time.Now()
		if uploads != nil {
			uploads.wait()
		}
		pushed, err := b.push(ctx, client, cfg.Tags)
		if err != nil {
			return withCode(CodePush, err)
		}
		if pushed != digest {
			return withCode(CodePush, fmt.Errorf("pushing: registry reports digest %s, built %s", pushed, digest))
		}
		log.Info("pushed", "digest", digest.String(), "duration", time.Since(start).Round(time.Millisecond))
		return nil
	}
	var sc *scanOutcome
	var scanName string // the image's name in the findings document
	pushed := cfg.Push
	if cfg.Scan {
		// The context is read (to find a finding's line) only inside it:
		// a symlink in the repository cannot lead the scan to host files.
		ctxRoot, err := os.OpenRoot(cfg.Context)
		if err != nil {
			return withCode(CodeScan, fmt.Errorf("opening build context: %w", err))
		}
		defer ctxRoot.Close()
		target := scanTarget{
			img:            res.Image,
			name:           b.imageDigests[0].String(),
			origins:        layerOrigins(res.Layers, dockerfilePath(cfg), contextDir(cfg)),
			source:         ctxRoot.FS(),
			platform:       platforms[0],
			dockerfile:     cfg.File,
			dockerfilePath: dockerfilePath(cfg),
			db:             ahead.dbOutcome(),
		}
		if len(cfg.Tags) > 0 {
			target.name = cfg.Tags[0]
		}
		scanName = target.name
		if len(platforms) > 1 {
			log.Info("scanning the image of the first platform", "platform", cfg.Platforms[0], "platforms", len(platforms))
		}
		doScan := func(ctx context.Context, s gitlabSections) error {
			defer s.start("scan", "Scanning "+target.name)()
			var err error
			sc, err = runScan(ctx, cfg, target, client, o.lookup, log)
			if err != nil && len(cfg.FailOn) == 0 && ctx.Err() == nil && ExitCode(err) == CodeScan {
				// Report only: nothing gates on the scan, so a scan that
				// cannot run (no DB reachable) warns instead of failing
				// the build.
				log.Warn("scan skipped: it could not run, and fail-on is empty (report only), so the run goes on", "err", err)
				sc = nil
				return nil
			}
			return err
		}
		switch {
		case cfg.Push && !cfg.ScanBeforePush:
			// Scan while pushing: the push is network, the scan CPU.
			// One section: GitLab nests sections, it does not interleave them.
			endBoth := sections.start("push_scan", "Pushing and scanning "+target.name)
			g, gctx := errgroup.WithContext(ctx)
			g.Go(func() error { return push(gctx, gitlabSections{}) })
			g.Go(func() error { return doScan(gctx, gitlabSections{}) })
			err := g.Wait()
			endBoth()
			if err != nil {
				return err
			}
		default:
			if err := doScan(ctx, sections); err != nil {
				return err
			}
			if cfg.Push && len(sc.gate) > 0 {
				log.Warn("not pushing: the scan fails the run (scan-before-push)")
				pushed = false
			} else if cfg.Push {
				if err := push(ctx, sections); err != nil {
					return err
				}
			}
		}
	} else if cfg.Push {
		if err := push(ctx, sections); err != nil {
			return err
		}
	}

	var referrers []Referrer
	if pushed && ctx.Err() == nil {
		referrers = attachDocuments(ctx, attachment{cfg: cfg, built: b, sc: sc, env: env, started: start, epoch: req.SourceDateEpoch}, client, log)
	}
	out, err := makeOutputs(b, cfg)
	if err != nil {
		return withCode(CodeBuild, err)
	}
	out.Metadata.Pushed = pushed
	out.Metadata.Referrers = referrers
	if sc != nil {
		out.Scan, err = finishScan(ctx, cfg, sc, scanName, out.Digest, o.stderr)
		if err != nil {
			return err
		}
	}
	rec.out, rec.sc = &out, sc
	return nil
}

// protect runs f, turning a panic (go-githubactions panics when it cannot
// write a workflow command) into an error.
func protect(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", r)
			}
		}
	}()
	f()
	return nil
}

// logLevel is Debug when the CI system's debug logging is on (GitHub's
// RUNNER_DEBUG=1, GitLab's CI_DEBUG_TRACE=true) or SHIP_DEBUG is set, and
// Info otherwise.
func logLevel(env func(string) string) slog.Level {
	if env("RUNNER_DEBUG") == "1" || env("CI_DEBUG_TRACE") == "true" || env("SHIP_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
