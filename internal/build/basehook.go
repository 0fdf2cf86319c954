package build

import (
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/dockerfile"
)

// targetChain is the target's FROM chain, root first: the stage the
// target is built on, the one that stage is built on, and so on.
func (b *builder) targetChain() []*dockerfile.ResolvedStage {
	var chain []*dockerfile.ResolvedStage
	for c := b.plan.Target; c != nil; c = c.BaseStage {
		chain = append(chain, c)
	}
	slices.Reverse(chain)
	return chain
}

// chainRoot is the first stage of the target's FROM chain.
func (b *builder) chainRoot() *dockerfile.ResolvedStage { return b.targetChain()[0] }

// chainInstructions are the names of the instructions of the target's
// FROM chain, root first, upper case.
func (b *builder) chainInstructions() []string {
	var out []string
	for _, s := range b.targetChain() {
		for _, c := range s.Commands {
			out = append(out, strings.ToUpper(c.Name()))
		}
	}
	return out
}

// callBaseHook calls WithBaseImageHook's hook with base, the image the
// target's FROM chain starts from, once per build: the stage that starts
// the chain calls it as soon as it has resolved its base image.
func (b *builder) callBaseHook(base v1.Image) {
	if b.opts.baseHook == nil {
		return
	}
	b.baseHookOnce.Do(func() { b.opts.baseHook(base, b.chainInstructions()) })
}
