package gitcommit

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLooseObjects(t *testing.T) {
	t.Parallel()
	requireGit(t)
	dir := initRepo(t)
	makeCommits(t, dir, 3)
	got, _ := checkHead(t, dir, dir)
	if want := time.Unix(baseTime+2*3600, 0).UTC(); !got.Equal(want) {
		t.Errorf("time = %v, want the committer date of commit 2, %v", got, want)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".git", "objects", "pack", "*.pack")); len(m) != 0 {
		t.Fatalf("test setup: objects should be loose, found packs %v", m)
	}
}

func TestPackedAfterGC(t *testing.T) {
	t.Parallel()
	requireGit(t)
	dir := initRepo(t)
	makeCommits(t, dir, 12)
	git(t, dir, "gc", "-q", "--aggressive", "--prune=now")
	if _, err := os.Stat(filepath.Join(dir, ".git", "refs", "heads", "main")); err == nil {
		t.Fatal("test setup: gc should have packed refs/heads/main")
	}
	checkHead(t, dir, dir)
	checkAllCommits(t, dir)
}

// TestDeltifiedCommits reads commits stored as deltas, with base offsets
// (OFS_DELTA) and with base ids (REF_DELTA).
func TestDeltifiedCommits(t *testing.T) {
	t.Parallel()
	requireGit(t)
	for _, tc := range []struct {
		name     string
		config   string
		wantType int
	}{
		{"ofs-delta", "repack.useDeltaBaseOffset=true", objOfsDelta},
		{"ref-delta", "repack.useDeltaBaseOffset=false", objRefDelta},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := initRepo(t)
			makeCommits(t, dir, 12)
			git(t, dir, "-c", tc.config, "repack", "-q", "-adf", "--window=250", "--depth=50")
			checkHead(t, dir, dir)
			idx, entries := packEntries(t, dir)
			r, err := openRepo(dir)
			if err != nil {
				t.Fatal(err)
			}
			deltified := 0
			for id, f := range entries {
				if f[0] != "commit" || len(f) < 6 {
					continue // not a commit, or not a delta
				}
				deltified++
				wantTime, _ := gitHead(t, dir, id)
				got, err := r.commitTime(id)
				if err != nil {
					t.Fatalf("commit %s (delta depth %s): %v", id, f[4], err)
				}
				if !got.Equal(wantTime) {
					t.Errorf("commit %s: time %v, git says %v", id, got, wantTime)
				}
				if typ := entryType(t, idx, f[3]); typ != tc.wantType {
					t.Errorf("commit %s: pack entry type %d, want %d", id, typ, tc.wantType)
				}
			}
			if deltified == 0 {
				t.Fatal("test setup: no commit was stored as a delta")
			}
		})
	}
}

// entryType returns the type of the pack entry at offset in the pack of
// index idx.
func entryType(t *testing.T, idx, offset string) int {
	t.Helper()
	f, size, err := openPackFile(strings.TrimSuffix(idx, ".idx") + ".pack")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off, err := strconv.ParseInt(offset, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	e, err := readEntry(f, size, off)
	if err != nil {
		t.Fatal(err)
	}
	return e.typ
}

// checkAllCommits compares the time of every commit of HEAD's history
// with git's.
func checkAllCommits(t *testing.T, dir string) {
	t.Helper()
	r, err := openRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	for id := range strings.FieldsSeq(git(t, dir, "rev-list", "HEAD")) {
		want, _ := gitHead(t, dir, id)
		got, err := r.commitTime(id)
		if err != nil {
			t.Fatalf("commit %s: %v", id, err)
		}
		if !got.Equal(want) {
			t.Errorf("commit %s: time %v, git says %v", id, got, want)
		}
	}
}

func TestShallowClone(t *testing.T) {
	t.Parallel()
	requireGit(t)
	src := initRepo(t)
	makeCommits(t, src, 5)
	dst := filepath.Join(t.TempDir(), "shallow")
	git(t, src, "clone", "-q", "--depth", "1", "file://"+src, dst)
	if _, err := os.Stat(filepath.Join(dst, ".git", "shallow")); err != nil {
		t.Fatalf("test setup: clone is not shallow: %v", err)
	}
	_, id := checkHead(t, dst, dst)
	if _, want := gitHead(t, src, "HEAD"); id != want {
		t.Errorf("shallow clone HEAD %s, source HEAD %s", id, want)
	}
}

func TestSharedCloneUsesAlternates(t *testing.T) {
	t.Parallel()
	requireGit(t)
	src := initRepo(t)
	makeCommits(t, src, 3)
	dst := filepath.Join(t.TempDir(), "shared")
	git(t, src, "clone", "-q", "--shared", src, dst)
	if _, err := os.Stat(filepath.Join(dst, ".git", "objects", "info", "alternates")); err != nil {
		t.Fatalf("test setup: no alternates: %v", err)
	}
	checkHead(t, dst, dst)
}

func TestDetachedHead(t *testing.T) {
	t.Parallel()
	requireGit(t)
	dir := initRepo(t)
	makeCommits(t, dir, 4)
	git(t, dir, "checkout", "-q", "--detach", "HEAD~2")
	head, err := os.ReadFile(filepath.Join(dir, ".git", "HEAD"))
	if err != nil || strings.HasPrefix(string(head), "ref:") {
		t.Fatalf("test setup: HEAD is not detached: %q %v", head, err)
	}
	got, _ := checkHead(t, dir, dir)
	if want := time.Unix(baseTime+1*3600, 0).UTC(); !got.Equal(want) {
		t.Errorf("time = %v, want commit 1's %v", got, want)
	}
}

func TestLinkedWorktree(t *testing.T) {
	t.Parallel()
	requireGit(t)
	src := initRepo(t)
	makeCommits(t, src, 3)
	wt := filepath.Join(t.TempDir(), "wt")
	git(t, src, "worktree", "add", "-q", "-b", "feature", wt, "HEAD~1")
	if fi, err := os.Stat(filepath.Join(wt, ".git")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("test setup: worktree .git is not a file: %v", err)
	}
	checkHead(t, wt, wt)
	// A commit made in the worktree: a loose branch in the common refs.
	commitN(t, wt, 7)
	got, _ := checkHead(t, wt, wt)
	if want := time.Unix(baseTime+7*3600, 0).UTC(); !got.Equal(want) {
		t.Errorf("worktree time = %v, want %v", got, want)
	}
	checkHead(t, src, src)
	// Also after packing the shared objects and refs.
	git(t, src, "gc", "-q", "--prune=now")
	checkHead(t, wt, wt)
	checkHead(t, src, src)
}

func TestSeparateGitDir(t *testing.T) {
	t.Parallel()
	requireGit(t)
	base := t.TempDir()
	work := filepath.Join(base, "work")
	git(t, base, "init", "-q", "-b", "main", "--separate-git-dir", filepath.Join(base, "store.git"), work)
	makeCommits(t, work, 2)
	checkHead(t, work, work)
}

func TestSubmodule(t *testing.T) {
	t.Parallel()
	requireGit(t)
	lib := initRepo(t)
	makeCommits(t, lib, 2)
	top := initRepo(t)
	makeCommits(t, top, 1)
	git(t, top, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "file://"+lib, "lib")
	sub := filepath.Join(top, "lib")
	gitFile, err := os.ReadFile(filepath.Join(sub, ".git"))
	if err != nil || !strings.HasPrefix(string(gitFile), "gitdir: ../") {
		t.Fatalf("test setup: submodule .git file is %q (%v), want a relative gitdir", gitFile, err)
	}
	_, id := checkHead(t, sub, sub)
	if _, want := gitHead(t, lib, "HEAD"); id != want {
		t.Errorf("submodule HEAD %s, library HEAD %s", id, want)
	}
	checkHead(t, top, top)
}

func TestBranchOnlyInPackedRefs(t *testing.T) {
	t.Parallel()
	requireGit(t)
	dir := initRepo(t)
	makeCommits(t, dir, 3)
	git(t, dir, "tag", "-a", "-m", "annotated", "v1") // adds a peeled line
	git(t, dir, "pack-refs", "--all")
	if _, err := os.Stat(filepath.Join(dir, ".git", "refs", "heads", "main")); err == nil {
		t.Fatal("test setup: refs/heads/main is still loose")
	}
	packed, err := os.ReadFile(filepath.Join(dir, ".git", "packed-refs"))
	if err != nil || !strings.Contains(string(packed), "\n^") {
		t.Fatalf("test setup: packed-refs has no peeled line: %q %v", packed, err)
	}
	checkHead(t, dir, dir)
}

func TestSubdirectory(t *testing.T) {
	t.Parallel()
	requireGit(t)
	dir := initRepo(t)
	makeCommits(t, dir, 2)
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	checkHead(t, sub, dir)
	rel, err := filepath.Rel(mustGetwd(t), sub)
	if err != nil {
		t.Fatal(err)
	}
	checkHead(t, rel, dir) // a relative path
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestNotACheckout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	checkError(t, dir, "not in a git checkout")
	checkError(t, filepath.Join(dir, "missing"), "no such file")
}

func TestNoCommitYet(t *testing.T) {
	t.Parallel()
	requireGit(t)
	dir := initRepo(t)
	checkError(t, dir, "refs/heads/main: not found")
}

func TestSHA256NotSupported(t *testing.T) {
	t.Parallel()
	requireGit(t)
	dir := initRepo(t, "--object-format=sha256")
	makeCommits(t, dir, 1)
	checkError(t, dir, "not supported")
}
