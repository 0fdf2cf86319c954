package gitcommit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxSymrefDepth bounds chains of symbolic refs (HEAD → branch → ...).
const maxSymrefDepth = 5

// resolveHead returns the commit id HEAD points at.
func (r *repo) resolveHead() (string, error) {
	b, err := readSmallFile(filepath.Join(r.gitDir, "HEAD"))
	if err != nil {
		return "", fmt.Errorf("reading HEAD: %w", err)
	}
	content := strings.TrimSpace(string(b))
	for range maxSymrefDepth {
		name, ok := strings.CutPrefix(content, "ref:")
		if !ok {
			if !isHexID(content) {
				// The content is not echoed: a symlinked ref could show any file.
				return "", fmt.Errorf("HEAD: content is neither a ref nor an object id")
			}
			return content, nil
		}
		name = strings.TrimSpace(name)
		if content, err = r.readRef(name); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("HEAD: more than %d levels of symbolic refs", maxSymrefDepth)
}

// readRef returns the content of ref name: a loose ref file if there is
// one, else its line in packed-refs.
func (r *repo) readRef(name string) (string, error) {
	if !validRefName(name) {
		return "", fmt.Errorf("ref %q: invalid name", truncate(name))
	}
	b, err := readSmallFile(filepath.Join(r.refDir(name), filepath.FromSlash(name)))
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading ref %s: %w", name, err)
	}
	id, err := r.packedRef(name)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("ref %s: not found (no commit yet?)", name)
	}
	return id, nil
}

// refDir returns the directory holding ref name: per-worktree refs live in
// the worktree's git directory, the others in the common directory.
func (r *repo) refDir(name string) string {
	for _, p := range []string{"refs/worktree/", "refs/bisect/", "refs/rewritten/"} {
		if strings.HasPrefix(name, p) {
			return r.gitDir
		}
	}
	return r.commonDir
}

// packedRef looks name up in packed-refs and returns its object id, or ""
// if it is not there.
func (r *repo) packedRef(name string) (string, error) {
	f, err := os.Open(filepath.Join(r.commonDir, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("reading packed-refs: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		id, ref, ok := strings.Cut(line, " ")
		if ok && ref == name {
			if !isHexID(id) {
				return "", fmt.Errorf("packed-refs: invalid object id for %s", name)
			}
			return id, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading packed-refs: %w", err)
	}
	return "", nil
}

// validRefName accepts names under refs/ whose components cannot leave the
// refs directory.
func validRefName(name string) bool {
	if !strings.HasPrefix(name, "refs/") || strings.ContainsAny(name, "\\\x00 ~^:?*[") {
		return false
	}
	for c := range strings.SplitSeq(name, "/") {
		if c == "" || c[0] == '.' || strings.HasSuffix(c, ".lock") {
			return false
		}
	}
	return true
}

// truncate shortens s for an error message and keeps it on one line.
func truncate(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}
