package build

import (
	"context"
	"errors"
)

// Build builds req and returns the image of the target stage.
// (Stub: replaced by the real engine.)
func Build(ctx context.Context, req Request, opts ...Option) (*Result, error) {
	return nil, errors.New("build: not implemented yet")
}
