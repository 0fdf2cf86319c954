package dockerfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Plan is the resolved stage graph for one build: FROM references and
// platforms expanded with the global args, base stages and COPY --from
// sources linked, and the stages the target needs.
type Plan struct {
	Stages []*ResolvedStage // every stage, in Dockerfile order
	Target *ResolvedStage
	// Needed are the stages the target depends on (itself included), in
	// Dockerfile order: the order in which they must be built.
	Needed []*ResolvedStage
}

// ResolvedStage is a stage with its FROM line expanded.
type ResolvedStage struct {
	*Stage
	Base      string         // FROM reference after expansion
	Platform  string         // --platform after expansion, empty when not given
	BaseStage *ResolvedStage // the stage Base names, nil when Base is an image or scratch
	// CopyFrom maps the index of each COPY --from command in Commands to
	// its source: a stage, or nil when --from names an image (see FromImage).
	CopyFrom map[int]*ResolvedStage
}

// IsScratch reports whether the stage starts from the empty image.
func (s *ResolvedStage) IsScratch() bool { return s.BaseStage == nil && s.Base == "scratch" }

// DisplayName returns the stage name, or "stage-N" when it has none.
func (s *ResolvedStage) DisplayName() string {
	if s.Name != "" {
		return s.Name
	}
	return fmt.Sprintf("stage-%d", s.Index)
}

// Resolve expands every FROM line with globals (see GlobalArgs), links
// stages and selects those target needs. target is a stage name (or, when
// no stage has that name, an index); empty means the last stage.
func (df *Dockerfile) Resolve(globals shell.EnvGetter, target string) (*Plan, error) {
	p := &Plan{}
	byName := map[string]*ResolvedStage{}
	for _, st := range df.Stages {
		rs := &ResolvedStage{Stage: st, CopyFrom: map[int]*ResolvedStage{}}
		base, _, err := df.Lex().ProcessWord(st.BaseName, globals)
		if err != nil {
			return nil, &Error{Location: st.Location, Err: err}
		}
		if base == "" {
			return nil, &Error{Location: st.Location, Err: fmt.Errorf("base name (%s) should not be blank", st.BaseName)}
		}
		rs.Base = base
		if st.Platform != "" {
			pl, _, err := df.Lex().ProcessWord(st.Platform, globals)
			if err != nil {
				return nil, &Error{Location: st.Location, Err: fmt.Errorf("failed to process arguments for platform %s: %w", st.Platform, err)}
			}
			if pl == "" {
				return nil, &Error{Location: st.Location, Err: fmt.Errorf("empty platform value from expression %s", st.Platform)}
			}
			rs.Platform = pl
		}
		// As in BuildKit, only a stage defined earlier can be a base, and the
		// lookup is by the exact (lower-case) name.
		if b, ok := byName[base]; ok {
			rs.BaseStage = b
		}
		p.Stages = append(p.Stages, rs)
		if st.Name != "" {
			byName[st.Name] = rs
		}
	}
	for _, rs := range p.Stages {
		for i, cmd := range rs.Commands {
			c, ok := cmd.Command.(*instructions.CopyCommand)
			if !ok || c.From == "" {
				continue
			}
			src, isStage, err := p.Source(c.From)
			if err != nil {
				return nil, &Error{Location: cmd.Location, Err: err}
			}
			if isStage {
				rs.CopyFrom[i] = src
			} else {
				rs.CopyFrom[i] = nil
			}
		}
	}
	t, err := p.find(target)
	if err != nil {
		return nil, err
	}
	p.Target = t
	if err := p.checkCycles(); err != nil {
		return nil, err
	}
	p.Needed = p.Reachable(t)
	return p, nil
}

// Source resolves a COPY --from value: a stage name (case-insensitive) or
// index, else an image reference (isStage false). Variables are not
// allowed in --from, as in BuildKit.
func (p *Plan) Source(from string) (*ResolvedStage, bool, error) {
	if strings.Contains(from, "$") {
		res, _, err := shell.NewLex('\\').ProcessWord(from, &Env{})
		if err != nil || res != from {
			return nil, false, errors.New("variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround")
		}
	}
	if idx, err := strconv.Atoi(from); err == nil {
		if idx < 0 || idx >= len(p.Stages) {
			return nil, false, fmt.Errorf("invalid stage index %d", idx)
		}
		return p.Stages[idx], true, nil
	}
	name := strings.ToLower(from)
	for _, s := range p.Stages {
		if s.Name != "" && s.Name == name {
			return s, true, nil
		}
	}
	return nil, false, nil
}

// Names returns the stage names, in order.
func (p *Plan) Names() []string {
	var names []string
	for _, s := range p.Stages {
		if s.Name != "" {
			names = append(names, s.Name)
		}
	}
	return names
}

// ErrUnknownTarget is wrapped by the error Resolve returns when the target
// names no stage: a usage error, not a build failure.
var ErrUnknownTarget = errors.New("unknown target stage")

func (p *Plan) find(target string) (*ResolvedStage, error) {
	if target == "" {
		return p.Stages[len(p.Stages)-1], nil
	}
	name := strings.ToLower(target)
	for _, s := range p.Stages {
		if s.Name == name {
			return s, nil
		}
	}
	if idx, err := strconv.Atoi(target); err == nil && idx >= 0 && idx < len(p.Stages) {
		return p.Stages[idx], nil
	}
	names := p.Names()
	if len(names) == 0 {
		return nil, fmt.Errorf("%w %q: the Dockerfile has no named stages", ErrUnknownTarget, target)
	}
	return nil, fmt.Errorf("%w %q (stages: %s)", ErrUnknownTarget, target, strings.Join(names, ", "))
}

// Deps returns the stages s depends on directly: its base stage and the
// stages of its COPY --from commands.
func (s *ResolvedStage) Deps() []*ResolvedStage {
	var deps []*ResolvedStage
	if s.BaseStage != nil {
		deps = append(deps, s.BaseStage)
	}
	for i := range s.Commands {
		if src := s.CopyFrom[i]; src != nil {
			deps = append(deps, src)
		}
	}
	return deps
}

// Reachable returns t and every stage it depends on, in Dockerfile order.
func (p *Plan) Reachable(t *ResolvedStage) []*ResolvedStage {
	seen := map[*ResolvedStage]bool{}
	var walk func(s *ResolvedStage)
	walk = func(s *ResolvedStage) {
		if seen[s] {
			return
		}
		seen[s] = true
		for _, d := range s.Deps() {
			walk(d)
		}
	}
	walk(t)
	var out []*ResolvedStage
	for _, s := range p.Stages {
		if seen[s] {
			out = append(out, s)
		}
	}
	return out
}

func (p *Plan) checkCycles() error {
	const (
		visiting = 1
		done     = 2
	)
	state := map[*ResolvedStage]int{}
	var visit func(s *ResolvedStage) error
	visit = func(s *ResolvedStage) error {
		switch state[s] {
		case visiting:
			return &Error{Location: s.Location, Err: fmt.Errorf("circular dependency detected on stage: %s", s.DisplayName())}
		case done:
			return nil
		}
		state[s] = visiting
		for _, d := range s.Deps() {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[s] = done
		return nil
	}
	for _, s := range p.Stages {
		if err := visit(s); err != nil {
			return err
		}
	}
	return nil
}
