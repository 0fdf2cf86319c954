package action

import (
	"context"
	"log/slog"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/scan"
)

// aheadScan analyses the layers of the base image for the scan while the
// build runs its first RUN (often waiting on the network), so that the
// scan after the build finds them in the layer cache.
type aheadScan struct {
	ctx    context.Context //nolint:containedctx // the analysis outlives the hook call
	cancel context.CancelFunc
	wg     sync.WaitGroup
	opts   []scan.Option
	log    *slog.Logger
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

// hook is the build's base image hook (build.WithBaseImageHook).
func (a *aheadScan) hook(base v1.Image, instructions []string) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		start := time.Now()
		n, err := scan.AnalyseBase(a.ctx, base, instructions, a.opts...)
		if err != nil {
			a.log.Debug("analysing the base image during the build failed; the scan analyses it", "err", err)
			return
		}
		a.log.Debug("base image analysed during the build", "layers", n, "duration", time.Since(start).Round(time.Millisecond))
	}()
}

// stop cancels an analysis still running and waits for it.
func (a *aheadScan) stop() {
	if a == nil {
		return
	}
	a.cancel()
	a.wg.Wait()
}
