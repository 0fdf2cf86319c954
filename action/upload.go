package action

import (
	"context"
	"log/slog"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// uploadWorkers is how many layers are uploaded at a time ahead of the
// push.
const uploadWorkers = 2

// layerUploader uploads blobs of a repository ahead of the push.
type layerUploader interface {
	UploadLayer(ctx context.Context, tag string, l v1.Layer) error
}

// earlyUploads uploads each layer the build writes to the repository of
// the first tag while the build goes on (build.WithLayerHook), so that the
// push at the end has little left to send. A failed upload is only logged:
// the push sends what is missing.
type earlyUploads struct {
	ctx    context.Context
	cancel context.CancelFunc
	up     layerUploader
	tag    string
	log    *slog.Logger
	sem    chan struct{}
	wg     sync.WaitGroup
}

func startUploads(ctx context.Context, up layerUploader, tag string, log *slog.Logger) *earlyUploads {
	ctx, cancel := context.WithCancel(ctx)
	return &earlyUploads{ctx: ctx, cancel: cancel, up: up, tag: tag, log: log, sem: make(chan struct{}, uploadWorkers)}
}

// add starts uploading l; it does not block.
func (u *earlyUploads) add(l v1.Layer) {
	u.wg.Go(func() {
		select {
		case u.sem <- struct{}{}:
		case <-u.ctx.Done():
			return
		}
		defer func() { <-u.sem }()
		if u.ctx.Err() != nil {
			return
		}
		if err := u.up.UploadLayer(u.ctx, u.tag, l); err != nil && u.ctx.Err() == nil {
			d, _ := l.Digest()
			u.log.Debug("uploading a layer ahead of the push failed; the push sends it", "layer", d.String(), "err", err)
		}
	})
}

// wait waits for the uploads started so far.
func (u *earlyUploads) wait() { u.wg.Wait(); u.cancel() }

// stop cancels the uploads and waits for them to end.
func (u *earlyUploads) stop() { u.cancel(); u.wg.Wait() }
