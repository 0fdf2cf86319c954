package copier

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"

	"github.com/intesys/ship-action/internal/rootfs"
)

// maxSymlinks bounds symlink resolution, as the kernel's ELOOP does.
const maxSymlinks = 255

// lstatFunc and readlinkFunc are the two primitives symlink resolution needs.
type (
	lstatFunc    func(p string) (fs.FileInfo, error)
	readlinkFunc func(p string) (string, error)
)

// resolvePath is rootfs.ResolvePath, with a path that leaves the root (no
// clamp) reported as outside the build context.
func resolvePath(lstat lstatFunc, readlink readlinkFunc, name string, followFinal, clamp bool) (string, error) {
	p, err := rootfs.ResolvePath(lstat, readlink, name, followFinal, clamp)
	if errors.Is(err, rootfs.ErrOutside) {
		return "", fmt.Errorf("%w (%w)", errOutside, err)
	}
	return p, err
}

func splitPath(p string) []string {
	return strings.Split(p, "/")
}

// fsPrimitives returns lstat and readlink for an arbitrary fs.FS. Without
// fs.ReadLinkFS, symlinks cannot be seen and every path is taken as is.
func fsPrimitives(fsys fs.FS) (lstatFunc, readlinkFunc) {
	if c, ok := fsys.(*Context); ok {
		return c.lstat, c.readlink
	}
	if rl, ok := fsys.(fs.ReadLinkFS); ok {
		return func(p string) (fs.FileInfo, error) { return rl.Lstat(p) }, rl.ReadLink
	}
	return func(p string) (fs.FileInfo, error) { return fs.Stat(fsys, p) },
		func(p string) (string, error) {
			return "", &fs.PathError{Op: "readlink", Path: p, Err: errors.ErrUnsupported}
		}
}

// lstatFS is Lstat on any fs.FS (Stat when it cannot tell symlinks apart).
func lstatFS(fsys fs.FS, p string) (fs.FileInfo, error) {
	if c, ok := fsys.(*Context); ok {
		return c.statResolved("lstat", p, p)
	}
	if rl, ok := fsys.(fs.ReadLinkFS); ok {
		return rl.Lstat(p)
	}
	return fs.Stat(fsys, p)
}

// readDirFS lists a symlink-free directory of any fs.FS.
func readDirFS(fsys fs.FS, p string) ([]fs.DirEntry, error) {
	if c, ok := fsys.(*Context); ok {
		return c.readDirResolved(p, p)
	}
	return fs.ReadDir(fsys, p)
}

// resolveDest follows the symlinks of the destination file system in dest, as
// BuildKit's fs.RootPath does before it copies: existing components are
// resolved inside the root (absolute targets and ".." stay in it); from the
// first missing component on, the path is kept as it is. Writing through the
// symlinks matters: a layer entry "bin/x" on a base where /bin is a symlink
// to usr/bin would, once applied by an overlay snapshotter, hide /usr/bin.
func resolveDest(t fs.ReadLinkFS, dest string) (string, error) {
	parts := splitPath(dest)
	var resolved []string
	links := 0
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}
		cur := path.Join(append(resolved, c)...)
		fi, err := t.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			rest := strings.TrimPrefix(path.Clean("/"+path.Join(append([]string{c}, parts...)...)), "/")
			resolved = append(resolved, rest)
			break
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = append(resolved, c)
			continue
		}
		links++
		if links > maxSymlinks {
			return "", &fs.PathError{Op: "resolve", Path: dest, Err: syscall.ELOOP}
		}
		target, err := t.ReadLink(cur)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			resolved = resolved[:0]
		}
		parts = append(splitPath(target), parts...)
	}
	if len(resolved) == 0 {
		return ".", nil
	}
	return path.Join(resolved...), nil
}
