package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"testing/fstest"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/intesys/ship-action/internal/copier"
	"github.com/intesys/ship-action/internal/dockerfile"
	"github.com/intesys/ship-action/internal/layer"
	"github.com/intesys/ship-action/internal/rootfs"
)

// copySpec is what COPY and ADD have in common.
type copySpec struct {
	params   instructions.SourcesAndDest
	from     string
	chown    string
	chmod    string
	link     bool
	parents  bool
	add      bool
	excludes []string
	checksum string
}

// copy runs COPY or ADD: the copier selects the files, they become one new
// layer (always, even when empty, as in BuildKit).
func (st *stageState) copy(ctx context.Context, cmd dockerfile.Command, spec copySpec) (int64, error) {
	if spec.parents {
		return -1, errors.New("COPY --parents is not supported yet")
	}
	msg := "COPY"
	if spec.add {
		msg = "ADD"
	}
	if spec.chown != "" {
		msg += " --chown=" + spec.chown
	}
	if spec.chmod != "" {
		msg += " --chmod=" + spec.chmod
	}
	for _, src := range spec.params.SourcePaths {
		msg += " " + src
	}
	for _, sc := range spec.params.SourceContents {
		msg += " <<" + sc.Path
	}
	msg += " " + spec.params.DestPath

	mode, err := parseChmod(spec.chmod)
	if err != nil {
		return -1, err
	}
	if spec.checksum != "" {
		if len(spec.params.SourcePaths) != 1 {
			return -1, errors.New("checksum can't be specified for multiple sources")
		}
		if s := spec.params.SourcePaths[0]; !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
			return -1, errors.New("checksum requires HTTP(S) or Git sources")
		}
	}
	view, err := st.rootView()
	if err != nil {
		return -1, err
	}
	var owner *copier.Owner
	if spec.chown != "" {
		uid, gid, unknown, err := resolveOwner(view, spec.chown)
		if err != nil {
			return -1, err
		}
		for _, name := range unknown {
			// BuildKit silently uses 0 here; say so, it is rarely meant.
			st.b.opts.logger.Warn(fmt.Sprintf("%s: --chown=%s: %s not found in the stage's /etc/passwd or /etc/group; using 0 as BuildKit does",
				cmd.Location, spec.chown, name))
		}
		owner = &copier.Owner{UID: uid, GID: gid}
	}

	req := copier.Request{
		Dest:        spec.params.DestPath,
		WorkDir:     st.cfg.Config.WorkingDir,
		Target:      view,
		Chown:       owner,
		Chmod:       mode,
		Excludes:    spec.excludes,
		Add:         spec.add,
		Checksum:    spec.checksum,
		HTTPClient:  st.b.opts.httpClient,
		Link:        spec.link,
		Instruction: strings.ToUpper(cmd.Name()),
		// Resolve the destination through the stage's symlinks only where
		// base images commonly have them: that lookup may read base layers.
		FollowDestSymlinks: destMayCrossSymlink(spec.params.DestPath, st.cfg.Config.WorkingDir),
	}
	var entries []layer.Entry
	if len(spec.params.SourcePaths) > 0 {
		r := req
		r.Sources = spec.params.SourcePaths
		if spec.from != "" {
			from, err := st.fromFS(ctx, spec.from)
			if err != nil {
				return -1, err
			}
			r.From = from
		} else {
			bctx, err := st.b.buildContext()
			if err != nil {
				return -1, fmt.Errorf("opening build context: %w", err)
			}
			r.Context = bctx
			r.ContextFiles = map[string]string{}
		}
		entries, err = copier.Plan(ctx, r)
		if err != nil {
			return -1, err
		}
		if len(r.ContextFiles) > 0 {
			st.contextFiles = r.ContextFiles
		}
	}
	for _, sc := range spec.params.SourceContents {
		// BuildKit writes the here-document as a 0644 file in a scratch
		// state and copies it from there.
		name := strings.TrimLeft(sc.Path, "/")
		r := req
		r.Sources = []string{"/" + name}
		r.From = fstest.MapFS{name: &fstest.MapFile{Data: []byte(sc.Data), Mode: 0o644, ModTime: st.b.fileTime()}}
		r.Add = false
		r.Checksum = ""
		more, err := copier.Plan(ctx, r)
		if err != nil {
			return -1, err
		}
		entries = mergeEntries(entries, more)
	}
	size, err := st.appendEntries(ctx, entries)
	if err != nil {
		return -1, err
	}
	st.commitWith(msg, true, true)
	return size, nil
}

// fromFS returns the file system COPY --from reads: an earlier stage or an
// image.
func (st *stageState) fromFS(ctx context.Context, from string) (fs.FS, error) {
	src, isStage, err := st.b.plan.Source(from)
	if err != nil {
		return nil, err
	}
	if isStage {
		if src.Index >= st.s.Index {
			return nil, fmt.Errorf("cannot copy from stage %q, it needs to be defined before current stage %q", from, st.s.DisplayName())
		}
		res, err := st.b.stage(ctx, src)
		if err != nil {
			return nil, err
		}
		if res.root != nil {
			// The stage ran RUN: read its files where they are.
			return res.root.dirView()
		}
		return rootfs.NewView(res.img), nil
	}
	img, err := st.b.image(ctx, from, st.platform)
	if err != nil {
		// As in BuildKit, a --from that names no stage is an image. A bare
		// word is more likely a mistyped stage name: say both.
		if strings.ContainsAny(from, "/:@") {
			return nil, fmt.Errorf("resolving image %s: %w", from, err)
		}
		stages := "the Dockerfile has no named stages"
		if names := st.b.plan.Names(); len(names) > 0 {
			stages = "stages: " + strings.Join(names, ", ")
		}
		return nil, fmt.Errorf("--from=%s names no stage (%s), and resolving it as an image failed: %w", from, stages, err)
	}
	return rootfs.NewView(img), nil
}

// appendEntries writes entries as a new layer of the stage (applied to
// its root file system directory, when there is one) and returns its
// compressed size.
func (st *stageState) appendEntries(ctx context.Context, entries []layer.Entry) (int64, error) {
	return st.appendLayer(ctx, entries, true)
}

// mergeEntries appends more to entries; an entry of more replaces an
// entry of the same name (a later source overwrites an earlier one).
func mergeEntries(entries, more []layer.Entry) []layer.Entry {
	idx := make(map[string]int, len(entries))
	for i, e := range entries {
		idx[e.Header.Name] = i
	}
	for _, e := range more {
		if i, ok := idx[e.Header.Name]; ok {
			entries[i] = e
			continue
		}
		idx[e.Header.Name] = len(entries)
		entries = append(entries, e)
	}
	return entries
}

// parseChmod parses an octal --chmod value into file mode bits.
func parseChmod(s string) (*fs.FileMode, error) {
	if s == "" {
		return nil, nil
	}
	p, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && strings.Trim(s, "0123456789") == "" {
			return nil, fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", s)
		}
		return nil, fmt.Errorf("symbolic --chmod=%s is not supported yet: use an octal mode", s)
	}
	if p > 0o7777 {
		return nil, fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", s)
	}
	m := fs.FileMode(p & 0o777)
	if p&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if p&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if p&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return &m, nil
}

// notFound reports whether a user/group lookup failed because the name or
// the file is missing (BuildKit then uses 0).
func notFound(err error) bool {
	return errors.Is(err, rootfs.ErrNotFound)
}

// destMayCrossSymlink reports whether a COPY/ADD destination lies under a
// directory that common base images make a symlink: merged /usr (bin, sbin,
// lib* on Debian 12+, Ubuntu, Fedora) and /var/run, /var/lock. BuildKit
// writes through such links (COPY x /bin/ lands in /usr/bin); ship resolves
// them only for these destinations, so that any other COPY of a build needs
// no base layer.
func destMayCrossSymlink(dest, workdir string) bool {
	if !path.IsAbs(dest) {
		dest = path.Join("/", workdir, dest)
	}
	p := strings.TrimPrefix(path.Clean(dest), "/")
	first, rest, _ := strings.Cut(p, "/")
	switch first {
	case "bin", "sbin", "lib", "lib32", "lib64", "libx32":
		return true
	case "var":
		second, _, _ := strings.Cut(rest, "/")
		return second == "run" || second == "lock"
	}
	return false
}
