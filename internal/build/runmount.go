package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/intesys/ship-action/internal/copier"
	"github.com/intesys/ship-action/internal/layer"
	"github.com/intesys/ship-action/internal/rootfs"
	"github.com/intesys/ship-action/internal/sandbox"
)

// runMountSet is the mounts of one RUN and what to undo afterwards.
type runMountSet struct {
	list    []sandbox.Mount
	env     []string // KEY=VALUE set by secret mounts with env= and SSH mounts
	cleanup []func()
	ssh     int // SSH sockets so far
}

// release undoes what the mounts needed: temporary directories, locks.
func (m *runMountSet) release() {
	for i := len(m.cleanup) - 1; i >= 0; i-- {
		m.cleanup[i]()
	}
	m.cleanup = nil
}

// runMounts prepares the --mount flags of a RUN: cache mounts are
// directories under the cache directory kept between builds (one RUN at a
// time uses each); bind mounts are a read-only copy of a path of the build
// context, of a stage or of an image; tmpfs mounts are an empty directory.
// Secret and SSH mounts are not supported yet.
func (st *stageState) runMounts(ctx context.Context, c *instructions.RunCommand) (_ *runMountSet, err error) {
	ms := &runMountSet{}
	defer func() {
		if err != nil {
			ms.release()
		}
	}()
	wd := st.cfg.Config.WorkingDir
	for _, m := range instructions.GetMounts(c) {
		switch m.Type {
		case instructions.MountTypeSecret:
			if err := st.secretMount(ms, m); err != nil {
				return nil, err
			}
			continue
		case instructions.MountTypeSSH:
			if err := st.sshMount(ms, m, wd); err != nil {
				return nil, err
			}
			continue
		}
		target := mountTarget(m.Target, wd)
		if target == "/" {
			return nil, fmt.Errorf("invalid mount target %q", m.Target)
		}
		switch m.Type {
		case instructions.MountTypeCache:
			if m.From != "" || (m.Source != "" && path.Clean("/"+m.Source) != "/") {
				return nil, errors.New("RUN --mount=type=cache with from or source is not supported yet")
			}
			dir, unlock, err := st.b.cacheMountDir(m)
			if err != nil {
				return nil, err
			}
			ms.cleanup = append(ms.cleanup, unlock)
			ms.list = append(ms.list, sandbox.Mount{Source: dir, Target: target})
		case instructions.MountTypeTmpfs:
			dir, err := os.MkdirTemp(st.b.tmpDir, "tmpfs-")
			if err != nil {
				return nil, fmt.Errorf("creating tmpfs mount: %w", err)
			}
			ms.cleanup = append(ms.cleanup, func() { _ = os.RemoveAll(dir) })
			ms.list = append(ms.list, sandbox.Mount{Source: dir, Target: target})
		case instructions.MountTypeBind:
			src, file, cleanup, err := st.bindSource(ctx, m)
			if err != nil {
				return nil, err
			}
			ms.cleanup = append(ms.cleanup, cleanup)
			// A bind mount is read-only unless rw; BuildKit discards what
			// RUN writes to a rw bind mount.
			ms.list = append(ms.list, sandbox.Mount{Source: src, Target: target, ReadOnly: m.ReadOnly, File: file})
		default:
			return nil, fmt.Errorf("RUN --mount=type=%s is not supported", m.Type)
		}
	}
	return ms, nil
}

// sshMount adds the socket of an SSH agent given with --ssh (Request.SSH)
// at the mount's target, /run/buildkit/ssh_agent.N by default, with the
// mount's uid, gid and mode (default 0600), and SSH_AUTH_SOCK pointing at
// the first one unless the stage sets it, as BuildKit does. A mount of an
// id that was not given fails the build when required, and is left out
// otherwise.
func (st *stageState) sshMount(ms *runMountSet, m *instructions.Mount, wd string) error {
	id := m.CacheID
	if id == "" {
		id = "default"
	}
	sock, ok := st.b.req.SSH[id]
	if !ok {
		if m.Required {
			return fmt.Errorf("RUN --mount=type=ssh,id=%s: no SSH agent or key was given for %q (ssh input or --ssh %s[=SOCKET|KEY])", id, id, id)
		}
		return nil
	}
	target := fmt.Sprintf("/run/buildkit/ssh_agent.%d", ms.ssh)
	if m.Target != "" {
		target = mountTarget(m.Target, wd)
	}
	ms.ssh++
	mount := sandbox.Mount{Source: sock, Target: target, Socket: true, Mode: 0o600}
	if m.UID != nil {
		mount.UID = int(*m.UID)
	}
	if m.GID != nil {
		mount.GID = int(*m.GID)
	}
	if m.Mode != nil {
		mount.Mode = fs.FileMode(*m.Mode & 0o777)
	}
	ms.list = append(ms.list, mount)
	if ms.ssh == 1 {
		if _, set := st.env.Get("SSH_AUTH_SOCK"); !set {
			ms.env = append(ms.env, "SSH_AUTH_SOCK="+target)
		}
	}
	return nil
}

// cacheMountDir returns the directory of a cache mount, creating it (with
// the mount's uid, gid and mode) on first use, and the function that
// releases it after the RUN. Sharing follows BuildKit within a build:
// shared (the default) lets concurrent RUNs use the directory at once,
// locked makes a RUN wait until the others release it, and private gives
// a RUN that finds it in use another instance of the cache (kept too, and
// reused by later RUNs that find the first busy).
func (b *builder) cacheMountDir(m *instructions.Mount) (string, func(), error) {
	id := m.CacheID
	if id == "" {
		id = path.Clean(m.Target)
	}
	sum := sha256.Sum256([]byte(id))
	base := filepath.Join(b.cacheBase, "cache", hex.EncodeToString(sum[:16]))

	dir, unlock := base, func() {}
	switch m.CacheSharing {
	case instructions.MountSharingLocked:
		l := b.cacheLock(base)
		l.Lock()
		unlock = l.Unlock
	case instructions.MountSharingPrivate:
		for i := 0; ; i++ {
			d := base
			if i > 0 {
				d = base + "-" + strconv.Itoa(i)
			}
			if l := b.cacheLock(d); l.TryLock() {
				dir, unlock = d, l.Unlock
				break
			}
		}
	}
	if err := createCacheDir(dir, m); err != nil {
		unlock()
		return "", nil, fmt.Errorf("creating cache mount %s: %w", id, err)
	}
	return dir, unlock, nil
}

// cacheLock returns the in-process lock of the cache mount directory dir.
func (b *builder) cacheLock(dir string) *sync.Mutex {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cacheLocks == nil {
		b.cacheLocks = map[string]*sync.Mutex{}
	}
	l, ok := b.cacheLocks[dir]
	if !ok {
		l = &sync.Mutex{}
		b.cacheLocks[dir] = l
	}
	return l
}

// createCacheDir creates the directory of a cache mount with the mount's
// mode and owner unless it exists.
func createCacheDir(dir string, m *instructions.Mount) error {
	if _, err := os.Lstat(dir); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	mode := fs.FileMode(0o755)
	if m.Mode != nil {
		mode = fs.FileMode(*m.Mode & 0o777)
	}
	uid, gid := 0, 0
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil // made by a concurrent RUN on a shared cache
	}
	if err == nil {
		err = os.Chmod(dir, mode)
	}
	if err == nil {
		err = os.Lchown(dir, uid, gid)
	}
	return err
}

// bindSource materialises the source of a bind mount in a temporary
// directory: the path of the build context (after .dockerignore), of an
// earlier stage, or of an image, copied with its metadata as COPY --from
// would see it. It returns the host path to mount and whether it is a file.
func (st *stageState) bindSource(ctx context.Context, m *instructions.Mount) (string, bool, func(), error) {
	src := path.Clean("/" + m.Source)
	req := copier.Request{Sources: []string{src}, Dest: "/", WorkDir: "/", Instruction: "RUN --mount"}
	if m.From != "" {
		from, err := st.fromFS(ctx, m.From)
		if err != nil {
			return "", false, nil, err
		}
		req.From = from
		rel := strings.TrimPrefix(src, "/")
		if rel == "" {
			rel = "."
		}
		fi, err := fs.Stat(from, rel)
		if err != nil {
			return "", false, nil, fmt.Errorf("mount source %s: %w", src, err)
		}
		if !fi.IsDir() {
			req.Dest = "/" + path.Base(src)
		}
	} else {
		bctx, err := st.b.buildContext()
		if err != nil {
			return "", false, nil, fmt.Errorf("opening build context: %w", err)
		}
		req.Context = bctx
		if fi, err := os.Stat(hostPath(st.b.req.ContextDir, src)); err == nil && !fi.IsDir() {
			req.Dest = "/" + path.Base(src)
		}
	}
	file := req.Dest != "/"
	entries, err := copier.Plan(ctx, req)
	if err != nil {
		return "", false, nil, fmt.Errorf("preparing bind mount of %s: %w", src, err)
	}
	dir, err := os.MkdirTemp(st.b.tmpDir, "bind-")
	if err != nil {
		return "", false, nil, fmt.Errorf("preparing bind mount of %s: %w", src, err)
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	if err := applyEntries(ctx, dir, entries); err != nil {
		cleanup()
		return "", false, nil, fmt.Errorf("preparing bind mount of %s: %w", src, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		cleanup()
		return "", false, nil, fmt.Errorf("preparing bind mount of %s: %w", src, err)
	}
	if file {
		return hostPath(dir, req.Dest), true, cleanup, nil
	}
	return dir, false, cleanup, nil
}

// applyEntries writes layer entries into dir, streaming their tar straight
// into the extractor (no compression: nothing is kept).
func applyEntries(ctx context.Context, dir string, entries []layer.Entry) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(layer.WriteTar(ctx, pw, entries)) }()
	_, err := rootfs.Apply(ctx, dir, pr)
	pr.CloseWithError(err) // unblocks the writer when Apply stops early
	return err
}
