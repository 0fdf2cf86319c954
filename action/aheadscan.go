package action

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/scan"
)

// aheadScan analyses the layers of the base image for the scan while the
// build extracts it and runs the instructions after FROM, so that the scan
// after the build finds them in the layer cache.
type aheadScan struct {
	ctx    context.Context //nolint:containedctx // the analysis outlives the hook call
	cancel context.CancelFunc
	wg     sync.WaitGroup
	opts   []scan.Option
	log    *slog.Logger

	mu     sync.Mutex
	dbDone chan struct{}   // closed once db is set; nil until the hook runs
	db     *scan.DBOutcome // the hook's preparation of the DB
}

// startAheadScan prepares the analysis with the scan's options; nil when
// nothing is scanned.
func startAheadScan(ctx context.Context, cfg Config, lookup LookupEnv, log *slog.Logger) *aheadScan {
	if !cfg.Scan {
		return nil
	}
	opts, err := scanOptions(cfg, lookup, log)
	if err != nil {
		return nil // the scan reports it
	}
	a := &aheadScan{opts: opts, log: log}
	a.ctx, a.cancel = context.WithCancel(ctx)
	return a
}

// hook is the build's base image hook (build.WithBaseImageHook). It first
// gets the vulnerability DB ready (downloaded while the build runs, not
// after it), and analyses nothing when that fails: the scan could not run,
// and says why itself.
func (a *aheadScan) hook(base v1.Image, instructions []string) {
	done := make(chan struct{})
	a.mu.Lock()
	a.dbDone = done
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		start := time.Now()
		// The scan repeats any warning of a failed download (dbOutcome): here
		// they are debug lines.
		quiet := append(slices.Clone(a.opts), scan.WithLogger(slog.New(allDebug{a.log.Handler()})))
		db := scan.PrepareDB(a.ctx, quiet...)
		a.db = db
		close(done)
		if err := db.Err(); err != nil {
			a.log.Debug("no vulnerability DB during the build; the base image is not analysed ahead", "err", err)
			return
		}
		if repo := db.Repository(); repo != "" {
			a.log.Info("vulnerability DB downloaded during the build", "repository", repo,
				"duration", time.Since(start).Round(time.Millisecond))
		}
		start = time.Now()
		n, err := scan.AnalyseBase(a.ctx, base, instructions, a.opts...)
		if err != nil {
			a.log.Debug("analysing the base image during the build failed; the scan analyses it", "err", err)
			return
		}
		a.log.Debug("base image analysed during the build", "layers", n, "duration", time.Since(start).Round(time.Millisecond))
	}()
}

// dbOutcome returns what the hook's preparation of the DB came to, for the
// scan after the build (scan.WithDBOutcome), waiting for it if it is still
// going on; nil when the hook did not run (the build ran no RUN) or a == nil.
func (a *aheadScan) dbOutcome() *scan.DBOutcome {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	done := a.dbDone
	a.mu.Unlock()
	if done == nil {
		return nil
	}
	<-done
	return a.db
}

// stop cancels an analysis still running and waits for it.
func (a *aheadScan) stop() {
	if a == nil {
		return
	}
	a.cancel()
	a.wg.Wait()
}

// allDebug is a slog.Handler that logs every record at debug level.
type allDebug struct{ h slog.Handler }

func (d allDebug) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d allDebug) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return d.h.Handle(ctx, r)
}

func (d allDebug) WithAttrs(as []slog.Attr) slog.Handler { return allDebug{d.h.WithAttrs(as)} }
func (d allDebug) WithGroup(g string) slog.Handler       { return allDebug{d.h.WithGroup(g)} }
