package build

import (
	"strings"

	"github.com/intesys/ship-action/internal/dockerfile"
)

// chainRoot is the first stage of the target's FROM chain: the target, or
// the stage it is built on, and so on.
func (b *builder) chainRoot() *dockerfile.ResolvedStage {
	s := b.plan.Target
	for s.BaseStage != nil {
		s = s.BaseStage
	}
	return s
}

// inChain reports whether s is in the target's FROM chain.
func (b *builder) inChain(s *dockerfile.ResolvedStage) bool {
	for c := b.plan.Target; c != nil; c = c.BaseStage {
		if c == s {
			return true
		}
	}
	return false
}

// chainInstructions are the names of the instructions of the target's
// FROM chain, root first, upper case.
func (b *builder) chainInstructions() []string {
	var chain []*dockerfile.ResolvedStage
	for c := b.plan.Target; c != nil; c = c.BaseStage {
		chain = append(chain, c)
	}
	var out []string
	for i := len(chain) - 1; i >= 0; i-- {
		for _, c := range chain[i].Commands {
			out = append(out, strings.ToUpper(c.Name()))
		}
	}
	return out
}

// callBaseHook calls WithBaseImageHook's hook the first time a RUN of the
// target's FROM chain executes.
func (b *builder) callBaseHook(s *dockerfile.ResolvedStage) {
	if b.opts.baseHook == nil || !b.inChain(s) {
		return
	}
	b.baseHookOnce.Do(func() {
		b.mu.Lock()
		base := b.chainBase
		b.mu.Unlock()
		if base != nil {
			b.opts.baseHook(base, b.chainInstructions())
		}
	})
}
