package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/intesys/ship-action/internal/dockerfile"
	"github.com/intesys/ship-action/internal/rootfs"
)

// historyComment is the comment BuildKit's Dockerfile frontend writes on
// every history entry it adds.
const historyComment = "buildkit.dockerfile.v0"

// defaultPathEnv is the PATH BuildKit sets when the base image has none.
const defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// stageResult is a built stage.
type stageResult struct {
	img      v1.Image       // its layers (the config of img is not authoritative)
	cfg      *v1.ConfigFile // its config, history and diff IDs
	platform v1.Platform
	report   Stage
	base     baseInfo        // the external base under it
	env      *dockerfile.Env // the variables at the end of the stage (config Env plus ARGs)
	args     []buildArg      // the ARGs declared in the stage and the stages under it
	root     *keptRoot       // its root file system, when it has one and later stages use it
	layers   []LayerInfo     // what made each layer of img
	key      string          // the layer cache key (see runcache.go)
	pending  []v1.Layer      // layers not yet in key
}

// stageState is a stage being built.
type stageState struct {
	b        *builder
	s        *dockerfile.ResolvedStage
	img      v1.Image
	cfg      *v1.ConfigFile
	env      *dockerfile.Env // the variables instructions see: config Env plus ARGs
	platform v1.Platform
	cmdSet   bool // CMD was given in this stage (ENTRYPOINT keeps it then)
	base     baseInfo
	view     *stageFS
	dirView  *rootfs.DirView // of root, opened on first use
	root     string          // the extracted root file system, "" until a RUN needs it
	rootDirs string          // the private directory that holds root (root itself without overlay)
	layers   []LayerInfo     // what made each layer of img
	step     *Step           // the instruction being run
	// contextFiles are the build-context files of the layer about to be
	// added (COPY/ADD), for LayerInfo.ContextFiles.
	contextFiles map[string]string
	ovl          *overlayRoot // the overlay mount of root, nil when root is a copy
	args         []buildArg   // the ARGs in scope, for RUN's history
	key          string       // the layer cache key so far (runcache.go)
	pending      []v1.Layer   // layers added since key was computed
	last         v1.Layer     // the layer added last
}

func (b *builder) buildStage(ctx context.Context, s *dockerfile.ResolvedStage) (*stageResult, error) {
	st := &stageState{b: b, s: s}
	defer st.removeRoot()
	report := Stage{Index: s.Index, Name: s.Name, Base: s.Base}
	platform := b.platform
	if s.Platform != "" {
		p, err := v1.ParsePlatform(s.Platform)
		if err != nil {
			return nil, &dockerfile.Error{Location: s.Location, Err: fmt.Errorf("failed to parse platform %s: %w", s.Platform, err)}
		}
		platform = *p
	}

	var triggers []string
	var inherited *dockerfile.Env
	switch {
	case s.BaseStage != nil:
		base, err := b.stage(ctx, s.BaseStage)
		if err != nil {
			return nil, err
		}
		st.img = base.img
		st.layers = slices.Clone(base.layers)
		st.cfg = base.cfg.DeepCopy()
		st.platform = base.platform
		st.base = base.base
		// As BuildKit: a stage built on another inherits its ARG values
		// (they are in its state's environment) and its build args list.
		inherited = base.env
		st.args = append(st.args, base.args...)
		// The triggers of a stage used as a base are its own ONBUILD
		// instructions (inherited ones already ran in it).
		for _, c := range s.BaseStage.Commands {
			if ob, ok := c.Command.(*instructions.OnbuildCommand); ok {
				triggers = append(triggers, ob.Expression)
			}
		}
		st.startKey(nil, base)
	case s.Base == "scratch":
		st.img = empty.Image
		st.cfg = emptyConfig(platform)
		st.platform = platform
		st.startKey(nil, nil)
	default:
		img, err := b.image(ctx, s.Base, platform)
		if err != nil {
			return nil, &dockerfile.Error{Location: s.Location, Err: fmt.Errorf("resolving base image %s: %w", s.Base, err)}
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, &dockerfile.Error{Location: s.Location, Err: fmt.Errorf("resolving base image %s: reading config: %w", s.Base, err)}
		}
		layers, err := img.Layers()
		if err != nil {
			return nil, &dockerfile.Error{Location: s.Location, Err: fmt.Errorf("resolving base image %s: listing layers: %w", s.Base, err)}
		}
		st.img = img
		if b.chainRoot() == s {
			b.callBaseHook(img)
		}
		st.layers, err = baseLayerInfo(img, cf, s)
		if err != nil {
			return nil, &dockerfile.Error{Location: s.Location, Err: fmt.Errorf("resolving base image %s: %w", s.Base, err)}
		}
		st.cfg = baseConfig(cf)
		st.platform = platform
		st.base = baseInfo{layers: len(layers), history: cf.History, known: true}
		triggers = cf.Config.OnBuild
		st.startKey(img, nil)
	}
	st.cfg.Config.OnBuild = nil
	if _, ok := dockerfile.NewEnv(st.cfg.Config.Env).Get("PATH"); !ok && st.platform.OS != "windows" {
		st.cfg.Config.Env = append(st.cfg.Config.Env, defaultPathEnv)
	}
	if wd := st.cfg.Config.WorkingDir; wd != "" {
		st.cfg.Config.WorkingDir = normalizeWorkdir("", wd)
	}
	st.env = dockerfile.NewEnv(st.cfg.Config.Env)
	if inherited != nil {
		st.env = inherited.Clone()
	}

	cmds := make([]dockerfile.Command, 0, len(triggers)+len(s.Commands))
	for _, t := range triggers {
		c, err := dockerfile.ParseTrigger(t, s.Location)
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, c)
	}
	cmds = append(cmds, s.Commands...)

	for _, cmd := range cmds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		step := Step{Instruction: st.instructionText(cmd), Location: cmd.Location, EmptyLayer: true}
		st.step = &step
		nLayers := len(st.layers)
		size, err := st.dispatch(ctx, cmd)
		if err != nil {
			var dfErr *dockerfile.Error
			if errors.As(err, &dfErr) || errors.Is(err, context.Canceled) {
				return nil, err
			}
			return nil, &dockerfile.Error{Location: cmd.Location, Err: err}
		}
		if size >= 0 {
			step.EmptyLayer = false
			step.LayerSize = size
		}
		if _, isRun := cmd.Command.(*instructions.RunCommand); !isRun && st.b.keyed && len(st.layers) > nLayers {
			st.pending = append(st.pending, st.last)
		}
		step.Duration = time.Since(start)
		report.Steps = append(report.Steps, step)
		b.opts.logger.Debug("step done", "stage", s.DisplayName(), "instruction", step.Instruction, "duration", step.Duration)
	}
	kept, err := st.keepRoot()
	if err != nil {
		return nil, err
	}
	return &stageResult{img: st.img, cfg: st.cfg, platform: st.platform, report: report, base: st.base, env: st.env, args: st.args, root: kept, layers: st.layers, key: st.key, pending: st.pending}, nil
}

// baseConfig copies the config of a base image keeping what BuildKit's
// image type (OCI image config plus Healthcheck, OnBuild, Shell and
// ArgsEscaped) keeps: Docker-only fields such as container,
// docker_version, Hostname or Image are dropped, and so is created.
func baseConfig(cf *v1.ConfigFile) *v1.ConfigFile {
	c := cf.DeepCopy()
	c.Created = v1.Time{}
	c.Container = ""
	c.DockerVersion = "" //nolint:staticcheck // cleared on purpose
	c.Config = v1.Config{
		User:         c.Config.User,
		ExposedPorts: c.Config.ExposedPorts,
		Env:          c.Config.Env,
		Entrypoint:   c.Config.Entrypoint,
		Cmd:          c.Config.Cmd,
		Volumes:      c.Config.Volumes,
		WorkingDir:   c.Config.WorkingDir,
		Labels:       c.Config.Labels,
		StopSignal:   c.Config.StopSignal,
		ArgsEscaped:  c.Config.ArgsEscaped,
		Healthcheck:  c.Config.Healthcheck,
		OnBuild:      c.Config.OnBuild,
		Shell:        c.Config.Shell,
	}
	return c
}

// emptyConfig is BuildKit's config for FROM scratch.
func emptyConfig(p v1.Platform) *v1.ConfigFile {
	cfg := &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		OSVersion:    p.OSVersion,
		Variant:      p.Variant,
		RootFS:       v1.RootFS{Type: "layers"},
	}
	if len(p.OSFeatures) > 0 {
		cfg.OSFeatures = append([]string(nil), p.OSFeatures...)
	}
	cfg.Config.WorkingDir = "/"
	if p.OS != "windows" {
		cfg.Config.Env = []string{defaultPathEnv}
	}
	return cfg
}

// instructionText is the instruction as BuildKit shows it in progress
// output: the original text with variables expanded, keyword upper case.
// Exec-form (JSON) arguments are kept as written: the shell lexer would
// drop their quotes. Continuation whitespace is folded to one space.
func (st *stageState) instructionText(cmd dockerfile.Command) string {
	text := strings.Join(strings.Fields(cmd.Original), " ")
	_, args, _ := strings.Cut(text, " ")
	if expandsVariables(cmd) && strings.Contains(text, "$") && !strings.HasPrefix(strings.TrimSpace(args), "[") {
		if w, err := st.b.df.ExpandWord(text, st.env); err == nil {
			text = w
		}
	}
	keyword, rest, _ := strings.Cut(text, " ")
	text = strings.ToUpper(keyword)
	if rest != "" {
		text += " " + rest
	}
	if cmd.OnBuild {
		text = "ONBUILD " + text
	}
	return text
}

// expandsVariables reports whether BuildKit substitutes ARG and ENV values
// in an instruction, as its instructions package marks them (RUN, CMD,
// ENTRYPOINT and HEALTHCHECK leave them to the shell at run time); an ARG
// shows its default expanded.
func expandsVariables(cmd dockerfile.Command) bool {
	switch cmd.Command.(type) {
	case instructions.SupportsSingleWordExpansion, *instructions.ArgCommand:
		return true
	}
	return false
}

// commit appends a history entry as BuildKit's commitToHistory does:
// metadata-only entries are empty_layer; COPY and ADD (which BuildKit
// commits with their LLB state) get the " # buildkit" suffix.
func (st *stageState) commit(createdBy string, withLayer bool) {
	st.commitWith(createdBy, withLayer, false)
}

func (st *stageState) commitWith(createdBy string, withLayer, buildkitSuffix bool) {
	if buildkitSuffix {
		createdBy += " # buildkit"
	}
	st.cfg.History = append(st.cfg.History, v1.History{
		Created:    st.b.now(),
		CreatedBy:  createdBy,
		Comment:    historyComment,
		EmptyLayer: !withLayer,
	})
}

// now is the creation time of new history entries: SOURCE_DATE_EPOCH when
// set, else the current time.
func (b *builder) now() v1.Time {
	if b.epoch != nil {
		return v1.Time{Time: b.epoch.UTC()}
	}
	return v1.Time{Time: time.Now().UTC().Truncate(time.Millisecond)}
}

// stageView is the stage's file system as COPY, ADD, WORKDIR and --chown
// read it: a *stageFS over the layers, or a *rootfs.DirView of the root
// file system directory once a RUN made one.
type stageView interface {
	fs.StatFS
	fs.ReadLinkFS
	fs.ReadFileFS
	fs.ReadDirFS
}

// rootView returns a view of the stage's current file system: its root
// file system directory when it has one (kept equal to the image by
// syncRoot; looking there reads no layer), else a lazy view of its layers.
func (st *stageState) rootView() (stageView, error) {
	if st.root != "" {
		if st.dirView == nil {
			d, err := rootfs.NewDirView(st.root)
			if err != nil {
				return nil, err
			}
			st.dirView = d
		}
		return st.dirView, nil
	}
	if st.view == nil {
		v, err := newStageFS(st.img, st.base)
		if err != nil {
			return nil, err
		}
		st.view = v
	}
	return st.view, nil
}

// addLayer appends a new layer to the stage.
func (st *stageState) addLayer(l v1.Layer) error {
	img, err := mutate.AppendLayers(st.img, l)
	if err != nil {
		return fmt.Errorf("appending layer: %w", err)
	}
	diffID, err := l.DiffID()
	if err != nil {
		return fmt.Errorf("hashing layer: %w", err)
	}
	st.img = img
	st.cfg.RootFS.Type = "layers"
	st.cfg.RootFS.DiffIDs = append(st.cfg.RootFS.DiffIDs, diffID)
	info := LayerInfo{DiffID: diffID, ContextFiles: st.contextFiles}
	if d, err := l.Digest(); err == nil {
		info.Digest = d
	}
	if st.step != nil {
		info.Instruction, info.Location = st.step.Instruction, st.step.Location
	}
	st.layers = append(st.layers, info)
	st.last = l
	st.contextFiles = nil
	st.view = nil
	return nil
}

// baseLayerInfo describes the layers of the base image img of stage s,
// from its manifest and config (no layer is fetched).
func baseLayerInfo(img v1.Image, cf *v1.ConfigFile, s *dockerfile.ResolvedStage) ([]LayerInfo, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	if len(m.Layers) != len(cf.RootFS.DiffIDs) {
		return nil, fmt.Errorf("manifest has %d layers, config %d diff IDs", len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	out := make([]LayerInfo, len(m.Layers))
	for i, l := range m.Layers {
		out[i] = LayerInfo{DiffID: cf.RootFS.DiffIDs[i], Digest: l.Digest, Base: true, Instruction: "FROM " + s.Base, Location: s.Location}
	}
	return out, nil
}

// feedsTarget reports whether the layers of s end up in the image Build
// returns: s is the target stage or one it is built on (FROM stage).
func (b *builder) feedsTarget(s *dockerfile.ResolvedStage) bool {
	for t := b.plan.Target; t != nil; t = t.BaseStage {
		if t.Index == s.Index {
			return true
		}
	}
	return false
}
