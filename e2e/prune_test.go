package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestCacheMaxSize builds on one base, then on another with
// cache-max-size 0: the second run removes the first base's extracted
// root file system and its RUN layer from the cache dir, keeps its own,
// and says so.
func TestCacheMaxSize(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	reg := testbed.StartRegistry(t)
	testbed.PushImage(t, testbed.BusyboxImage(t), reg.Ref("base/one:1"))
	testbed.PushImage(t, testbed.BusyboxImage(t, testbed.WithFile("etc/two", "2\n")), reg.Ref("base/two:1"))
	cache := t.TempDir()
	build := func(base string, extra ...string) shipResult {
		t.Helper()
		src := t.TempDir()
		writeTree(t, src, map[string]file{"Dockerfile": txt("FROM " + reg.Ref(base) + "\nRUN echo " + base + " > /built\n")})
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
			if !strings.HasSuffix(e.Name(), ".lock") && !strings.HasPrefix(e.Name(), ".") {
				out = append(out, e.Name())
			}
		}
		return out
	}
	build("base/one:1")
	firstRoots, firstKeys := entries("rootfs"), entries("layers/keys")
	if len(firstRoots) != 1 || len(firstKeys) != 1 {
		t.Fatalf("after the first build: rootfs %v, layer keys %v; want one of each", firstRoots, firstKeys)
	}
	res := build("base/two:1", "--cache-max-size", "0")
	roots, keys := entries("rootfs"), entries("layers/keys")
	if len(roots) != 1 || roots[0] == firstRoots[0] || len(keys) != 1 || keys[0] == firstKeys[0] {
		t.Errorf("after the second build: rootfs %v, keys %v; want only the second build's (first: %v, %v)", roots, keys, firstRoots, firstKeys)
	}
	if !strings.Contains(res.Stderr, `msg="cache trimmed"`) || !strings.Contains(res.Stderr, "removed=2") {
		t.Errorf("no log of the trimmed cache:\n%s", res.Stderr)
	}
}
