//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"log/slog"
)

type runner struct {
	ctx  context.Context //nolint:containedctx // lives for one Run call
	spec Spec
	opts options
	log  *slog.Logger
}

func (r *runner) run() (Result, error) {
	return Result{}, errors.New("running sandbox: RUN needs a Linux kernel")
}

// Detect reports ModeChroot: only Linux has the namespaces.
func Detect() Mode { return ModeChroot }
