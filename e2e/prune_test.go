package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestCacheMaxSize builds twice on one base, then twice on another, the
// last with cache-max-size 0: the last run removes the first base's
// extracted root file system and the earlier RUN layers from the cache dir,
// keeps its own, and says so.
func TestCacheMaxSize(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	reg := testbed.StartRegistry(t)
	testbed.PushImage(t, testbed.BusyboxImage(t), reg.Ref("base/one:1"))
	testbed.PushImage(t, testbed.BusyboxImage(t, testbed.WithFile("etc/two", "2\n")), reg.Ref("base/two:1"))
	cache := t.TempDir()
	// A base's cache entry is made by the second build that runs a RUN on
	// it (the first extracts it in memory): each base is built twice, with
	// different RUNs.
	build := func(base string, run int, extra ...string) shipResult {
		t.Helper()
		src := t.TempDir()
		writeTree(t, src, map[string]file{"Dockerfile": txt(fmt.Sprintf("FROM %s\nRUN echo %s %d > /built\n", reg.Ref(base), base, run))})
		res := runShipInTemp(t, ctx, t.TempDir(), nil, append([]string{"--context", src, "--insecure-registry", reg.Host,
			"--scan=false", "--cache-dir", cache}, extra...)...)
		if res.Code != 0 {
			t.Fatalf("build on %s: %s", base, res)
		}
		return res
	}
	entries := func(dir string) []string {
		t.Helper()
		ents, err := os.ReadDir(filepath.Join(cache, dir))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".lock") && !strings.HasSuffix(e.Name(), ".used") && !strings.HasPrefix(e.Name(), ".") {
				out = append(out, e.Name())
			}
		}
		return out
	}
	build("base/one:1", 1)
	if roots := entries("rootfs"); len(roots) != 0 {
		t.Fatalf("after the first build on a base: rootfs %v, want none (the base in memory)", roots)
	}
	build("base/one:1", 2)
	build("base/two:1", 1)
	firstRoots, firstKeys := entries("rootfs"), entries("layers/keys")
	if len(firstRoots) != 1 || len(firstKeys) != 3 {
		t.Fatalf("after three builds: rootfs %v, layer keys %v; want base one's entry and three keys", firstRoots, firstKeys)
	}
	res := build("base/two:1", 2, "--cache-max-size", "0")
	roots, keys := entries("rootfs"), entries("layers/keys")
	if len(roots) != 1 || roots[0] == firstRoots[0] || len(keys) != 1 || slices.Contains(firstKeys, keys[0]) {
		t.Errorf("after the last build: rootfs %v, keys %v; want only the last build's (before: %v, %v)", roots, keys, firstRoots, firstKeys)
	}
	// Removed: base one's entry and the three earlier builds' keys.
	if !strings.Contains(res.Stderr, `msg="cache trimmed"`) || !strings.Contains(res.Stderr, "removed=4") {
		t.Errorf("no log of the trimmed cache:\n%s", res.Stderr)
	}
}
