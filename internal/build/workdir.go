package build

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/intesys/ship-action/internal/layer"
	"github.com/intesys/ship-action/internal/rootfs"
)

// workdir sets the working directory and, as BuildKit does, creates it
// (mkdir -p, mode 0755, owned by USER) in a new layer, which is empty when
// the directory already exists. WORKDIR / adds no layer.
func (st *stageState) workdir(ctx context.Context, c *instructions.WorkdirCommand) (int64, error) {
	wd := normalizeWorkdir(st.cfg.Config.WorkingDir, c.Path)
	st.cfg.Config.WorkingDir = wd
	if wd == "/" {
		st.commit("WORKDIR "+wd, false)
		return -1, nil
	}
	entries, err := st.mkdirEntries(wd)
	if err != nil {
		return -1, err
	}
	size, err := st.appendEntries(ctx, entries)
	if err != nil {
		return -1, err
	}
	st.commit("WORKDIR "+wd, true)
	return size, nil
}

// mkdirEntries returns the layer entries of mkdir -p dir on the stage's
// file system: the created directories and, as a snapshot diff has them,
// their existing parents.
func (st *stageState) mkdirEntries(dir string) ([]layer.Entry, error) {
	view, err := st.rootView()
	if err != nil {
		return nil, err
	}
	parts := strings.Split(strings.Trim(dir, "/"), "/")
	now := st.b.fileTime()
	var existing []*tar.Header
	var created []string
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		if len(created) > 0 {
			created = append(created, p)
			continue
		}
		fi, err := view.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			created = append(created, p)
			continue
		case err != nil:
			return nil, fmt.Errorf("creating working directory %s: %w", dir, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("creating working directory %s: /%s is a symbolic link, not supported yet", dir, p)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("creating working directory %s: /%s: not a directory", dir, p)
		}
		h := &tar.Header{Name: p, Typeflag: tar.TypeDir, Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime()}
		if th, ok := fi.Sys().(*tar.Header); ok {
			h.Mode = th.Mode & 0o7777
			h.Uid, h.Gid = th.Uid, th.Gid
		}
		existing = append(existing, h)
	}
	if len(created) == 0 {
		return nil, nil
	}
	uid, gid, _, err := resolveOwner(view, st.cfg.Config.User)
	if err != nil {
		return nil, fmt.Errorf("creating working directory %s: %w", dir, err)
	}
	var entries []layer.Entry
	for i, h := range existing {
		if i == len(existing)-1 {
			h.ModTime = now // its content changed
		}
		entries = append(entries, layer.Entry{Header: h})
	}
	for _, p := range created {
		entries = append(entries, layer.Entry{Header: &tar.Header{
			Name: p, Typeflag: tar.TypeDir, Mode: 0o755, Uid: uid, Gid: gid, ModTime: now,
		}})
	}
	return entries, nil
}

// fileTime is the time given to files the build creates.
func (b *builder) fileTime() time.Time {
	if b.epoch != nil {
		return b.epoch.UTC()
	}
	return time.Now().UTC().Truncate(time.Second)
}

// resolveOwner resolves a USER or --chown value ("user[:group]", names or
// numbers) against fsys as BuildKit does: a user name sets the user's
// primary group too; an unknown name resolves to 0 (BuildKit does not fail),
// and is returned in unknown so that the caller can warn.
func resolveOwner(fsys fs.FS, spec string) (uid, gid int, unknown []string, err error) {
	if spec == "" {
		return 0, 0, nil, nil
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	if id, ok := parseID(user); ok {
		uid, gid = id, id
	} else {
		u, err := rootfs.LookupUser(fsys, user)
		switch {
		case err == nil:
			uid, gid = u.UID, u.GID
		case !notFound(err):
			return 0, 0, nil, fmt.Errorf("looking up user %s: %w", user, err)
		default:
			unknown = append(unknown, "user "+user)
		}
	}
	if hasGroup {
		if id, ok := parseID(group); ok {
			gid = id
		} else {
			g, err := rootfs.LookupGroup(fsys, group)
			switch {
			case err == nil:
				gid = g
			case !notFound(err):
				return 0, 0, nil, fmt.Errorf("looking up group %s: %w", group, err)
			default:
				unknown = append(unknown, "group "+group)
			}
		}
	}
	return uid, gid, unknown, nil
}

func parseID(s string) (int, bool) {
	if s == "root" {
		return 0, true
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return int(n), true
}
