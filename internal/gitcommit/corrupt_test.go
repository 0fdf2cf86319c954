package gitcommit

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// headObjectPath returns the loose object file of HEAD and makes it
// writable.
func headObjectPath(t *testing.T, dir string) string {
	t.Helper()
	id := git(t, dir, "rev-parse", "HEAD")
	path := filepath.Join(dir, ".git", "objects", id[:2], id[2:])
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func deflate(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCorruptLooseObject(t *testing.T) {
	t.Parallel()
	requireGit(t)
	commit := "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ncommitter A <a@b> 5 +0000\n\nx\n"
	for _, tc := range []struct {
		name    string
		content func(t *testing.T) []byte
		want    string
	}{
		{"garbage", func(*testing.T) []byte { return []byte("not zlib at all") }, "loose object"},
		{"empty", func(*testing.T) []byte { return nil }, "loose object"},
		{"other content", func(t *testing.T) []byte {
			return deflate(t, fmt.Appendf(nil, "commit %d\x00%s", len(commit), commit))
		}, "corrupt"},
		{"wrong size", func(t *testing.T) []byte {
			return deflate(t, fmt.Appendf(nil, "commit %d\x00%s", len(commit)+1, commit))
		}, "header says"},
		{"bad header", func(t *testing.T) []byte { return deflate(t, []byte("commit\x00")) }, "invalid header"},
		{"too large", func(t *testing.T) []byte {
			return deflate(t, fmt.Appendf(nil, "commit %d\x00%s", maxObjectSize+1, bytes.Repeat([]byte("a"), maxObjectSize+1)))
		}, "more than"},
		{"truncated zlib", func(t *testing.T) []byte {
			b := deflate(t, fmt.Appendf(nil, "commit %d\x00%s", len(commit), commit))
			return b[:len(b)/2]
		}, "loose object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := initRepo(t)
			makeCommits(t, dir, 2)
			if err := os.WriteFile(headObjectPath(t, dir), tc.content(t), 0o644); err != nil {
				t.Fatal(err)
			}
			checkError(t, dir, tc.want)
		})
	}
}

func TestHeadNotACommit(t *testing.T) {
	t.Parallel()
	requireGit(t)
	dir := initRepo(t)
	makeCommits(t, dir, 1)
	tree := git(t, dir, "rev-parse", "HEAD^{tree}")
	if err := os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte(tree+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	checkError(t, dir, "is a tree, not a commit")
}

func TestInvalidRefs(t *testing.T) {
	t.Parallel()
	requireGit(t)
	for _, tc := range []struct{ head, want string }{
		{"ref: refs/heads/../../../../etc/passwd\n", "invalid name"},
		{"ref: /etc/passwd\n", "invalid name"},
		{"ref: refs/heads/missing\n", "not found"},
		{"garbage\n", "neither a ref nor an object id"},
		{"0123456789012345678901234567890123456789\n", "not found"},
	} {
		dir := initRepo(t)
		makeCommits(t, dir, 1)
		if err := os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte(tc.head), 0o644); err != nil {
			t.Fatal(err)
		}
		checkError(t, dir, tc.want)
	}
}

// gcRepo returns a repository whose objects are all in one pack, the
// pack's path, and HEAD's offset in it.
func gcRepo(t *testing.T) (dir, packPath string, headOff int64) {
	t.Helper()
	dir = initRepo(t)
	makeCommits(t, dir, 6)
	git(t, dir, "gc", "-q", "--prune=now")
	idx, entries := packEntries(t, dir)
	off, err := strconv.ParseInt(entries[git(t, dir, "rev-parse", "HEAD")][3], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	packPath = idx[:len(idx)-len(".idx")] + ".pack"
	if err := os.Chmod(packPath, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, packPath, off
}

func TestTruncatedPack(t *testing.T) {
	t.Parallel()
	requireGit(t)
	dir, packPath, off := gcRepo(t)
	orig, err := os.ReadFile(packPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{0, 4, 12, 31, off, off + 1, off + 5, off + 20} {
		if err := os.WriteFile(packPath, orig[:size], 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprint(size), func(t *testing.T) { checkError(t, dir, "pack") })
	}
}

func TestTruncatedIndex(t *testing.T) {
	t.Parallel()
	requireGit(t)
	dir, packPath, _ := gcRepo(t)
	idx := packPath[:len(packPath)-len(".pack")] + ".idx"
	if err := os.Chmod(idx, 0o644); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 7, 100, idxHeaderSize, len(orig) - 41} {
		if err := os.WriteFile(idx, orig[:size], 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprint(size), func(t *testing.T) { checkError(t, dir, "pack index") })
	}
}

// TestCorruptPackBytes flips every byte of HEAD's pack entry in turn:
// HeadTime must never panic nor return a wrong answer.
func TestCorruptPackBytes(t *testing.T) {
	t.Parallel()
	requireGit(t)
	dir, packPath, off := gcRepo(t)
	wantTime, wantID := gitHead(t, dir, "HEAD")
	orig, err := os.ReadFile(packPath)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for i := off; i < off+200 && i < int64(len(orig))-20; i++ {
		b := bytes.Clone(orig)
		b[i] ^= 0x55
		if err := os.WriteFile(packPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		got, id, err := HeadTime(dir)
		if err != nil {
			failed++
			continue
		}
		if id != wantID || !got.Equal(wantTime) {
			t.Fatalf("byte %d flipped: HeadTime = %v, %s; want an error or %v, %s", i, got, id, wantTime, wantID)
		}
	}
	if failed == 0 {
		t.Fatal("no corruption was detected")
	}
}

// TestLargeOffsetTable rewrites a pack index so every offset goes through
// the table of 8-byte offsets, as in packs larger than 2 GiB.
func TestLargeOffsetTable(t *testing.T) {
	t.Parallel()
	requireGit(t)
	dir, packPath, _ := gcRepo(t)
	idx := packPath[:len(packPath)-len(".pack")] + ".idx"
	orig, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.BigEndian.Uint32(orig[idxHeaderSize-4:]))
	small := idxHeaderSize + n*24
	var out bytes.Buffer
	out.Write(orig[:small])
	var large bytes.Buffer
	// Entry 0 keeps its small offset: git rejects a table with more large
	// offsets than entries minus one, and is asked for the expected answers.
	for i := range n {
		off := binary.BigEndian.Uint32(orig[small+4*i:])
		if off&0x80000000 != 0 {
			t.Fatal("test setup: pack already has large offsets")
		}
		if i == 0 {
			binary.Write(&out, binary.BigEndian, off)
			continue
		}
		binary.Write(&out, binary.BigEndian, uint32(0x80000000|(i-1)))
		binary.Write(&large, binary.BigEndian, uint64(off))
	}
	out.Write(large.Bytes())
	out.Write(orig[small+4*n:]) // the checksums
	if err := os.Chmod(idx, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(idx, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	checkHead(t, dir, dir)
	checkAllCommits(t, dir)

	// An index into the large table past its end is an error.
	b := out.Bytes()
	for i := 1; i < n; i++ {
		binary.BigEndian.PutUint32(b[small+4*i:], 0x80000000|uint32(n+1000))
	}
	if err := os.WriteFile(idx, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := openRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(orig[idxHeaderSize+20 : idxHeaderSize+40]) // entry 1
	if _, _, err := r.readObject(id); err == nil || !strings.Contains(err.Error(), "large offset out of range") {
		t.Fatalf("reading %s: error %v, want large offset out of range", id, err)
	}
}
