package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/intesys/ship-action/internal/dockerfile"
	"github.com/intesys/ship-action/internal/layer"
	"github.com/intesys/ship-action/internal/sandbox"
	"github.com/intesys/ship-action/internal/snapshot"
)

// outputTailLines is how many lines of a RUN's output are kept for the
// error of a failed RUN.
const outputTailLines = 20

// heredocDir is where BuildKit mounts the script of a heredoc RUN that
// starts with a shebang.
const heredocDir = "/dev/pipes"

// buildArg is an ARG declared in a stage (or in the stages it is built
// on), with the value it got; BuildKit lists them in RUN history entries.
type buildArg struct {
	key   string
	value *string
}

// run executes a RUN instruction in the stage's root file system and adds
// what it changed as a new layer, as BuildKit's dispatchRun does.
func (st *stageState) run(ctx context.Context, cmd dockerfile.Command, c *instructions.RunCommand) (int64, error) {
	if err := st.b.df.Expand(cmd, st.env); err != nil {
		return -1, err
	}
	if st.platform.OS == "windows" {
		return -1, errors.New("RUN in a windows stage is not supported")
	}
	args, script, err := st.runArgs(c)
	if err != nil {
		return -1, err
	}
	network := instructions.GetNetwork(c)
	switch network {
	case instructions.NetworkDefault, instructions.NetworkNone:
	default:
		return -1, fmt.Errorf("RUN --network=%s is not supported", network)
	}
	if sec := instructions.GetSecurity(c); sec != "" && sec != instructions.SecuritySandbox {
		return -1, fmt.Errorf("RUN --security=%s is not supported", sec)
	}

	var key string
	if st.b.keyed {
		if key, err = st.runKey(ctx, c, args); err != nil {
			return -1, err
		}
		if l, ok := st.lookupRun(ctx, key); ok {
			return st.cachedRun(ctx, key, l, args)
		}
	}

	if err := st.checkEmulation(); err != nil {
		return -1, err
	}
	root, err := st.rootDir()
	if err != nil {
		return -1, err
	}
	mounts, err := st.runMounts(ctx, c)
	if err != nil {
		return -1, err
	}
	defer mounts.release()
	if script != nil {
		mounts.list = append(mounts.list, *script)
	}

	env := withEnv(st.runEnv(), mounts.env)
	uid, gid, groups, home, err := runUser(root, st.cfg.Config.User)
	if err != nil {
		return -1, err
	}
	if _, ok := dockerfile.NewEnv(env).Get("HOME"); !ok {
		env = append(env, "HOME="+home)
	}
	wd := st.cfg.Config.WorkingDir
	if wd == "" {
		wd = "/"
	}

	ignore := []string{"proc", "dev", "sys", "etc/resolv.conf", "etc/hosts"}
	for _, m := range mounts.list {
		ignore = append(ignore, strings.TrimPrefix(m.Target, "/"))
	}
	t0 := time.Now()
	var snap *snapshot.Snapshot
	if st.ovl != nil {
		// A new upper directory for this RUN; the DirView holds the
		// mount that is replaced.
		st.closeDirView()
		if err := st.ovl.beginRun(); err != nil {
			return -1, err
		}
	} else {
		snap, err = snapshot.Take(ctx, root, snapshot.WithIgnore(ignore...), snapshot.WithContentHash())
		if err != nil {
			return -1, fmt.Errorf("taking snapshot of root file system: %w", err)
		}
	}
	st.b.opts.logger.Debug("snapshot taken", "stage", st.s.DisplayName(), "overlay", st.ovl != nil,
		"changes_in_memory", st.ovl.upperInMem(), "duration", time.Since(t0))

	// As runc, create the mount points /proc, /dev and /sys when the
	// image lacks them: BuildKit's layer has them as empty directories.
	stubs, err := mountPointStubs(root)
	if err != nil {
		return -1, err
	}

	out := newOutputLog(st.b.opts.logger, st.s.DisplayName(), st.b.redactSecrets)
	mode := st.b.sandboxMode()
	spec := sandbox.Spec{
		RootFS:  root,
		Args:    args,
		Env:     env,
		Dir:     wd,
		UID:     uid,
		GID:     gid,
		Groups:  groups,
		Mounts:  mounts.list,
		Network: network,
		Stdout:  out,
		Stderr:  out,
	}
	st.b.opts.logger.Debug("running", "stage", st.s.DisplayName(), "args", args, "user", fmt.Sprintf("%d:%d", uid, gid), "dir", wd)
	t0 = time.Now()
	watchCtx, outgrown := st.ovl.watchUpper(st.b.runCtx)
	res, runErr := sandbox.Run(watchCtx, spec, sandbox.WithMode(mode), sandbox.WithLogger(st.b.opts.logger))
	if outgrown() && st.b.runCtx.Err() == nil {
		// Its upper directory in memory grew too large (memUpper): again,
		// from the start, on the disk.
		out.flush()
		st.b.opts.logger.Info("RUN's changes outgrew the memory set aside for them: running it again with its changes on the disk",
			"location", cmd.Location.String(), "after", time.Since(t0).Round(time.Millisecond))
		if err := st.ovl.restartOnDisk(); err != nil {
			return -1, err
		}
		if stubs, err = mountPointStubs(root); err != nil {
			return -1, err
		}
		res, runErr = sandbox.Run(st.b.runCtx, spec, sandbox.WithMode(mode), sandbox.WithLogger(st.b.opts.logger))
	}
	out.flush()
	st.b.opts.logger.Debug("RUN finished", "stage", st.s.DisplayName(), "duration", time.Since(t0))
	if runErr != nil {
		if err := ctx.Err(); err != nil {
			return -1, err
		}
		var exit *sandbox.ExitError
		if errors.As(runErr, &exit) {
			tail := out.tail()
			msg := fmt.Sprintf("RUN exited with %d", exit.Code)
			if len(tail) > 0 {
				st.b.opts.logger.Error("RUN failed", "location", cmd.Location.String(), "exit_code", exit.Code,
					"output", strings.Join(tail, "\n"))
				msg += fmt.Sprintf(" (last output line: %s)", tail[len(tail)-1])
			}
			return -1, &dockerfile.Error{Location: cmd.Location, Err: errors.New(msg)}
		}
		if err := st.execFormatError(runErr); err != nil {
			return -1, err
		}
		return -1, fmt.Errorf("running %s: %w", strings.Join(args, " "), runErr)
	}

	t0 = time.Now()
	var entries []layer.Entry
	if st.ovl != nil {
		entries, err = st.ovl.diff(ctx, snapshot.WithIgnore(ignore...), snapshot.WithIgnore(res.SandboxPaths()...))
	} else {
		entries, err = snap.Diff(ctx, root, snapshot.WithIgnore(res.SandboxPaths()...))
	}
	if err != nil {
		return -1, fmt.Errorf("finding what RUN changed: %w", err)
	}
	st.b.opts.logger.Debug("RUN changes found", "stage", st.s.DisplayName(), "entries", len(entries), "duration", time.Since(t0))
	entries = append(entries, stubs...)
	t0 = time.Now()
	size, err := st.appendLayer(ctx, entries, false)
	if err != nil {
		return -1, err
	}
	st.b.opts.logger.Debug("layer written", "stage", st.s.DisplayName(), "size", size, "duration", time.Since(t0))
	if st.ovl != nil {
		st.closeDirView()
		if err := st.ovl.endRun(); err != nil {
			return -1, err
		}
	}
	st.commitWith("RUN "+runCommandString(args, st.args, st.env), true, true)
	st.storeRun(key, st.last)
	return size, nil
}

// mountPointStubs creates the directories /proc, /dev and /sys (0755,
// root) that root lacks and returns their layer entries.
func mountPointStubs(root string) ([]layer.Entry, error) {
	var entries []layer.Entry
	for _, name := range []string{"dev", "proc", "sys"} {
		p := filepath.Join(root, name)
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := os.Mkdir(p, 0o755)
		if err == nil {
			err = os.Chmod(p, 0o755)
		}
		if err != nil {
			return nil, fmt.Errorf("creating mount point /%s: %w", name, err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, fmt.Errorf("creating mount point /%s: %w", name, err)
		}
		entries = append(entries, layer.Entry{Header: &tar.Header{
			Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: fi.ModTime(),
		}})
	}
	return entries, nil
}

// runArgs returns the argv of a RUN as BuildKit builds it: shell form
// through SHELL, exec form as written, a single heredoc as the shell's
// script (or, when it starts with a shebang, as a file run directly, which
// is then returned as a mount), other heredocs given to the shell with
// their bodies.
func (st *stageState) runArgs(c *instructions.RunCommand) ([]string, *sandbox.Mount, error) {
	args := append([]string(nil), c.CmdLine...)
	var script *sandbox.Mount
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, nil, fmt.Errorf("parsing produced an invalid run command: %v", args)
		}
		if heredoc := parser.MustParseHeredoc(args[0]); heredoc != nil {
			data := c.Files[0].Data
			if c.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				// The script's directory is mounted (not the file alone): the
				// sandbox then creates /dev/pipes itself.
				dir, err := os.MkdirTemp(st.b.tmpDir, "heredoc-")
				if err != nil {
					return nil, nil, fmt.Errorf("writing heredoc script: %w", err)
				}
				if err := os.Chmod(dir, 0o755); err != nil {
					return nil, nil, fmt.Errorf("writing heredoc script: %w", err)
				}
				name := path.Base(path.Clean("/" + c.Files[0].Name))
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o755); err != nil {
					return nil, nil, fmt.Errorf("writing heredoc script: %w", err)
				}
				target := path.Join(heredocDir, name)
				script = &sandbox.Mount{Source: dir, Target: heredocDir, ReadOnly: true}
				args = []string{target}
			} else {
				args = []string{data}
			}
		} else {
			var b strings.Builder
			b.WriteString(args[0])
			for _, file := range c.Files {
				b.WriteByte('\n')
				b.WriteString(file.Data)
				b.WriteString(file.Name)
			}
			args = []string{b.String()}
		}
	}
	if c.PrependShell {
		args = st.withShell(args)
	}
	return args, script, nil
}

// runEnv is the environment of a RUN: the stage's variables (config Env
// and ARGs in scope, in order) plus the proxy build args, which BuildKit
// passes without a declaration.
func (st *stageState) runEnv() []string {
	var env []string
	for _, k := range st.env.Keys() {
		v, _ := st.env.Get(k)
		env = append(env, k+"="+v)
	}
	keys := make([]string, 0, len(st.b.req.BuildArgs))
	for k := range st.b.req.BuildArgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, ok := st.env.Get(k); !ok && dockerfile.IsProxyArg(k) {
			env = append(env, k+"="+st.b.req.BuildArgs[k])
		}
	}
	return env
}

// runCommandString is BuildKit's created_by for a RUN: the build args in
// scope as "|N K=v ..." (value from the environment when set there), then
// the argv joined by spaces.
func runCommandString(args []string, buildArgs []buildArg, env *dockerfile.Env) string {
	var kvs []string
	idx := map[string]int{}
	for _, a := range buildArgs {
		v, ok := env.Get(a.key)
		if !ok && a.value != nil {
			v = *a.value
		}
		if i, ok := idx[a.key]; ok {
			kvs[i] = a.key + "=" + v
			continue
		}
		idx[a.key] = len(kvs)
		kvs = append(kvs, a.key+"="+v)
	}
	if len(kvs) > 0 {
		kvs = append([]string{fmt.Sprintf("|%d", len(kvs))}, kvs...)
	}
	return strings.Join(append(kvs, args...), " ")
}

// appendLayer writes entries as a new layer of the stage and returns its
// compressed size. apply says whether the layer must also be applied to
// the stage's root file system directory (false when the directory
// already holds the change, as after RUN).
func (st *stageState) appendLayer(ctx context.Context, entries []layer.Entry, apply bool) (int64, error) {
	opts := []layer.Option{layer.WithTempDir(st.b.tmpDir)}
	if st.b.epoch != nil {
		opts = append(opts, layer.WithEpoch(*st.b.epoch))
	}
	if hook := st.b.opts.layerHook; hook != nil && st.b.feedsTarget(st.s) {
		// The caller may upload the layer while it is compressed.
		opts = append(opts, layer.WithStream(hook))
	}
	l, err := layer.New(ctx, entries, opts...)
	if err != nil {
		return -1, fmt.Errorf("writing layer: %w", err)
	}
	size, err := l.Size()
	if err != nil {
		return -1, fmt.Errorf("writing layer: %w", err)
	}
	if err := st.addLayer(l); err != nil {
		return -1, err
	}
	if apply {
		if err := st.syncRoot(ctx, l); err != nil {
			return -1, err
		}
	}
	return size, nil
}

// outputLog receives the output of a RUN: each line, without the build's
// secrets, is logged at debug level and the last outputTailLines lines are
// kept.
type outputLog struct {
	mu      sync.Mutex
	log     interface{ Debug(string, ...any) }
	redact  func(string) string
	stage   string
	partial []byte
	lines   []string
}

func newOutputLog(log interface{ Debug(string, ...any) }, stage string, redact func(string) string) *outputLog {
	return &outputLog{log: log, stage: stage, redact: redact}
}

// Write implements io.Writer.
func (o *outputLog) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		o.line(string(o.partial[:i]))
		o.partial = o.partial[i+1:]
	}
	if len(o.partial) > 64<<10 { // a very long line without newline
		o.line(string(o.partial))
		o.partial = nil
	}
	return len(p), nil
}

func (o *outputLog) line(s string) {
	s = o.redact(strings.TrimRight(s, "\r"))
	o.log.Debug("RUN output", "stage", o.stage, "line", s)
	o.lines = append(o.lines, s)
	if len(o.lines) > outputTailLines {
		o.lines = o.lines[len(o.lines)-outputTailLines:]
	}
}

// flush logs a last line without a newline.
func (o *outputLog) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.partial) > 0 {
		o.line(string(o.partial))
		o.partial = nil
	}
}

// tail returns the last lines of output.
func (o *outputLog) tail() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.lines...)
}

// mountTarget resolves a RUN --mount target against the working directory.
func mountTarget(target, wd string) string {
	if !path.IsAbs(path.Clean(target)) {
		if wd == "" {
			wd = "/"
		}
		return path.Join("/", wd, target)
	}
	return path.Clean(target)
}

// hostPath joins an in-image path to a host directory.
func hostPath(dir, p string) string {
	return filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(p, "/")))
}
