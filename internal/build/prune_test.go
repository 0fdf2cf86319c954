package build

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// TestPruneCache fills a cache dir with root file system entries and
// layer cache entries of known sizes and last uses, and trims it: the
// least recently used go first, whole (a blob with every key naming it);
// entries used by this run, and a root file system another build holds,
// stay, even above the limit.
func TestPruneCache(t *testing.T) {
	t.Parallel()
	t.Run("limit 8000", func(t *testing.T) { t.Parallel(); testPruneCache(t, 8000) })
	t.Run("limit 9000", func(t *testing.T) { t.Parallel(); testPruneCache(t, 9000) })
}

// testPruneCache is TestPruneCache with a limit of 8000 or 9000 bytes.
func testPruneCache(t *testing.T, limit int64) {
	dir := t.TempDir()
	now := time.Now()
	keep := now.Add(-time.Minute) // this run started a minute ago
	age := func(d time.Duration) time.Time { return now.Add(-d) }
	setTime := func(p string, tm time.Time) {
		t.Helper()
		if err := os.Chtimes(p, tm, tm); err != nil {
			t.Fatal(err)
		}
	}
	rootfsEntry := func(key string, size int, used time.Time) {
		t.Helper()
		root := filepath.Join(dir, rootfsCacheDir, key, entryRoot, "usr", "lib")
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "lib.so"), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		report := filepath.Join(dir, rootfsCacheDir, key, entryReport)
		if err := os.WriteFile(report, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		setTime(report, used)
	}
	layerEntry := func(blobName string, size int, keys map[string]time.Time) {
		t.Helper()
		for _, d := range []string{"keys", "blobs"} {
			if err := os.MkdirAll(filepath.Join(dir, LayerCacheSubdir, d), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		blob := filepath.Join(dir, LayerCacheSubdir, "blobs", "sha256-"+blobName)
		if err := os.WriteFile(blob, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		setTime(blob, age(100*time.Hour))
		for k, used := range keys {
			h := v1.Hash{Algorithm: "sha256", Hex: blobName}
			rec, _ := json.Marshal(cacheRecord{Digest: h, DiffID: h, Size: int64(size)})
			p := filepath.Join(dir, LayerCacheSubdir, "keys", k+".json")
			if err := os.WriteFile(p, rec, 0o600); err != nil {
				t.Fatal(err)
			}
			setTime(p, used)
		}
	}
	hex := func(c string) string { return strings.Repeat(c, 64) }

	rootfsEntry("old", 4000, age(72*time.Hour))
	rootfsEntry("locked", 3000, age(96*time.Hour))                                                    // the oldest, but another build holds it
	rootfsEntry("current", 5000, now)                                                                 // used by this run
	layerEntry(hex("a"), 1000, map[string]time.Time{"k1": age(90 * time.Hour), "k2": age(time.Hour)}) // used an hour ago through k2
	layerEntry(hex("b"), 2000, map[string]time.Time{"k3": age(80 * time.Hour)})
	// Creating an entry: no report yet, not counted nor removed.
	if err := os.MkdirAll(filepath.Join(dir, rootfsCacheDir, ".tmp-x", entryRoot), 0o755); err != nil {
		t.Fatal(err)
	}

	bc := newBaseCache(dir)
	lk, got, err := bc.tryLock("locked", unix.LOCK_SH)
	if err != nil || !got {
		t.Fatalf("locking: %v %v", got, err)
	}
	defer lk.unlock()

	// 15000 bytes. By last use: "locked" (busy: kept), blob b (80 h),
	// "old" (72 h), blob a (its newest key an hour ago, not k1's 90 h):
	// with a limit of 9000 b and "old" go; with 8000, a too. "current" is
	// never removed.
	st, err := PruneCache(dir, limit, keep)
	if err != nil {
		t.Fatal(err)
	}
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(dir, p)); return err == nil }
	gone := []string{"rootfs/old", "layers/blobs/sha256-" + hex("b"), "layers/keys/k3.json"}
	kept := []string{"rootfs/locked/root/usr/lib/lib.so", "rootfs/current/root/usr/lib/lib.so", "rootfs/.tmp-x"}
	blobA := []string{"layers/blobs/sha256-" + hex("a"), "layers/keys/k1.json", "layers/keys/k2.json"}
	removed := 2
	if limit == 8000 {
		gone, removed = append(gone, blobA...), 3
	} else {
		kept = append(kept, blobA...)
	}
	if st.Before != 15000 || st.After > limit || st.Removed != removed || st.Busy != 1 {
		t.Errorf("stats %+v, want 15000 bytes before, at most %d after, %d removed, 1 busy", st, limit, removed)
	}
	for _, p := range gone {
		if exists(p) {
			t.Errorf("%s was kept", p)
		}
	}
	for _, p := range kept {
		if !exists(p) {
			t.Errorf("%s was removed", p)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "rootfs/current", entrySize)); err != nil || string(b) != "5000" {
		t.Errorf("size file of the current entry: %q %v", b, err)
	}

	// Only what this run used, and the busy entry, are left with a limit of 0.
	st, err = PruneCache(dir, 0, keep)
	if err != nil {
		t.Fatal(err)
	}
	if st.After != 8000 || !exists("rootfs/current") || !exists("rootfs/locked") || st.Busy != 1 {
		t.Errorf("limit 0: %+v, want the current and the locked entries kept (8000 bytes, 1 busy)", st)
	}
}
