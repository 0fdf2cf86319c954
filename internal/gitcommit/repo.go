package gitcommit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxSmallFile bounds the files read whole: .git files, commondir, HEAD,
// loose refs, config and alternates.
const maxSmallFile = 64 << 10

// maxAlternates bounds the object directories taken from
// objects/info/alternates.
const maxAlternates = 16

// repo is an opened repository: the per-worktree git directory and the
// common directory shared by all worktrees.
type repo struct {
	gitDir     string   // HEAD and per-worktree refs
	commonDir  string   // objects, refs, packed-refs, config
	objectDirs []string // commonDir/objects, then alternates
	packs      []*pack  // indexes found by loadPacks
	packsRead  bool
	inflated   int64 // bytes inflated from packs so far, bounded by maxInflated
}

// openRepo finds the repository containing dir and checks that its format
// is one this package reads.
func openRepo(dir string) (*repo, error) {
	gitDir, err := findGitDir(dir)
	if err != nil {
		return nil, err
	}
	commonDir := gitDir
	if b, err := readSmallFile(filepath.Join(gitDir, "commondir")); err == nil {
		p := strings.TrimSpace(string(b))
		if p == "" || strings.ContainsRune(p, 0) {
			return nil, fmt.Errorf("%s: empty or invalid commondir", gitDir)
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(gitDir, p)
		}
		commonDir = filepath.Clean(p)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	r := &repo{gitDir: gitDir, commonDir: commonDir}
	if err := r.checkConfig(); err != nil {
		return nil, err
	}
	r.objectDirs = append([]string{filepath.Join(commonDir, "objects")}, r.alternates()...)
	return r, nil
}

// findGitDir walks up from dir to the first .git and returns the git
// directory it names.
func findGitDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("finding git checkout: %w", err)
	} else if !fi.IsDir() {
		return "", fmt.Errorf("finding git checkout: %s is not a directory", abs)
	}
	for d := abs; ; {
		dotGit := filepath.Join(d, ".git")
		fi, err := os.Stat(dotGit)
		switch {
		case err == nil && fi.IsDir():
			return dotGit, nil
		case err == nil && fi.Mode().IsRegular():
			return readGitFile(dotGit)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("finding git checkout: %w", err)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("%s: not in a git checkout", abs)
		}
		d = parent
	}
}

// readGitFile reads a .git file ("gitdir: PATH") and returns the directory
// it points at, relative paths being taken from the file's directory.
func readGitFile(path string) (string, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	p, ok := strings.CutPrefix(strings.TrimSpace(line), "gitdir:")
	p = strings.TrimSpace(p)
	if !ok || p == "" || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%s: not a valid .git file (want \"gitdir: PATH\")", path)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(path), p)
	}
	p = filepath.Clean(p)
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s: gitdir %s is not a directory", path, p)
	}
	return p, nil
}

// checkConfig rejects repository formats this package does not read.
func (r *repo) checkConfig() error {
	b, err := readSmallFileLimit(filepath.Join(r.commonDir, "config"), 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		key = strings.ToLower(strings.TrimSpace(key))
		value = strings.ToLower(strings.Trim(strings.TrimSpace(value), `"`))
		switch {
		case key == "objectformat" && value != "sha1":
			return fmt.Errorf("%s: object format %s is not supported (only sha1)", r.commonDir, value)
		case key == "refstorage" && value != "files":
			return fmt.Errorf("%s: ref storage %s is not supported (only files)", r.commonDir, value)
		}
	}
	return nil
}

// alternates returns the object directories listed in
// objects/info/alternates, without following their own alternates.
func (r *repo) alternates() []string {
	objects := filepath.Join(r.commonDir, "objects")
	b, err := readSmallFile(filepath.Join(objects, "info", "alternates"))
	if err != nil {
		return nil
	}
	var dirs []string
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '"' || strings.ContainsRune(line, 0) {
			continue
		}
		if !filepath.IsAbs(line) {
			line = filepath.Join(objects, line)
		}
		dirs = append(dirs, filepath.Clean(line))
		if len(dirs) == maxAlternates {
			break
		}
	}
	return dirs
}

// readSmallFile reads a file of at most maxSmallFile bytes.
func readSmallFile(path string) ([]byte, error) {
	return readSmallFileLimit(path, maxSmallFile)
}

// readSmallFileLimit reads a file of at most limit bytes.
func readSmallFileLimit(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, fmt.Errorf("%s: contains a NUL byte", path)
	}
	return b, nil
}
