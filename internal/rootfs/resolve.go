package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"
)

// ErrOutside is wrapped by the errors of ResolvePath without clamp about
// a path that leaves the root.
var ErrOutside = errors.New("outside the root")

// ResolvePath follows the symlinks in name (slash-separated, relative to the
// root of a file system, possibly with ".." elements) and returns an
// equivalent clean path free of symlinks, except for the final element when
// followFinal is false.
//
// With clamp, ".." at the root stays at the root and absolute link targets
// start again at the root, as containerd's fs.RootPath does for an image file
// system. Without clamp, both are errors wrapping ErrOutside (the rule for a
// build context).
//
// A missing component gives an error wrapping fs.ErrNotExist.
func ResolvePath(lstat func(p string) (fs.FileInfo, error), readlink func(p string) (string, error), name string, followFinal, clamp bool) (string, error) {
	parts := strings.Split(name, "/")
	var resolved []string
	links := 0
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) == 0 {
				if clamp {
					continue
				}
				return "", fmt.Errorf("resolving %s: %w", name, ErrOutside)
			}
			resolved = resolved[:len(resolved)-1]
			continue
		}
		cur := path.Join(append(resolved, c)...)
		if len(parts) == 0 && !followFinal {
			resolved = append(resolved, c)
			break
		}
		fi, err := lstat(cur)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			links++
			if links > maxSymlinks {
				return "", &fs.PathError{Op: "resolve", Path: name, Err: syscall.ELOOP}
			}
			target, err := readlink(cur)
			if err != nil {
				return "", err
			}
			if strings.HasPrefix(target, "/") {
				if !clamp {
					return "", fmt.Errorf("resolving %s: symlink %s points to %s: %w", name, cur, target, ErrOutside)
				}
				resolved = resolved[:0]
			}
			parts = append(strings.Split(target, "/"), parts...)
			continue
		}
		if len(parts) > 0 && !fi.IsDir() {
			// Like ENOTDIR: nothing can exist below a non-directory.
			return "", &fs.PathError{Op: "lstat", Path: path.Join(cur, path.Join(parts...)), Err: fs.ErrNotExist}
		}
		resolved = append(resolved, c)
	}
	if len(resolved) == 0 {
		return ".", nil
	}
	return path.Join(resolved...), nil
}
