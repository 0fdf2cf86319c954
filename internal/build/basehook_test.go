package build

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestBaseImageHook: the hook is called once per build with the base image
// of the target's FROM chain and the chain's instructions, also when every
// RUN comes from the layer cache; never with the base of another stage, nor
// for a chain that starts FROM scratch.
func TestBaseImageHook(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	busybox := testbed.BusyboxImage(t)
	other := testbed.BusyboxImage(t, testbed.WithFile("/etc/other", "x\n"))
	df := "FROM other AS tool\nRUN echo tool > /tool\n" +
		"FROM busybox AS base\nCOPY a.txt /a.txt\n" +
		"FROM base\nCOPY --from=tool /tool /tool\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n"
	layers := filepath.Join(t.TempDir(), "layers")
	type call struct {
		base         v1.Image
		instructions []string
	}
	build := func(df string) []call {
		t.Helper()
		var mu sync.Mutex
		var calls []call
		hook := func(base v1.Image, instructions []string) {
			mu.Lock()
			calls = append(calls, call{base, instructions})
			mu.Unlock()
		}
		f := fixture{dockerfile: df, files: map[string]string{"a.txt": "a\n"}}
		src := &memSource{images: map[string]v1.Image{"busybox": busybox, "other": other}}
		_, err := Build(context.Background(), f.request(t), WithImageSource(src), WithCacheDir(t.TempDir()),
			WithLayerCache(layers), WithBaseImageHook(hook))
		if err != nil {
			t.Fatal(err)
		}
		return calls
	}
	want, _ := busybox.Digest()
	check := func(what string, calls []call, instructions ...string) {
		t.Helper()
		if len(calls) != 1 {
			t.Fatalf("%s: hook called %d times, want once", what, len(calls))
		}
		if got, _ := calls[0].base.Digest(); got != want {
			t.Errorf("%s: hook got base %s, want the chain's base busybox %s", what, got, want)
		}
		if !slices.Equal(calls[0].instructions, instructions) {
			t.Errorf("%s: instructions %v, want %v", what, calls[0].instructions, instructions)
		}
	}
	check("first build", build(df), "COPY", "COPY", "RUN", "CMD")
	check("every RUN cached", build(df), "COPY", "COPY", "RUN", "CMD")
	// Only a stage outside the chain runs RUN: the chain's base all the same.
	check("RUN outside the chain", build("FROM other AS tool\nRUN echo tool2 > /tool\nFROM busybox\nCOPY --from=tool /tool /tool\n"), "COPY")
	if c := build("FROM other AS tool\nRUN echo tool3 > /tool\nFROM scratch\nCOPY --from=tool /tool /tool\n"); len(c) != 0 {
		t.Errorf("a chain FROM scratch called the hook %d times", len(c))
	}
}

// TestBaseImageHookBeforeExtraction: the hook is called before the chain's
// first instruction, so that work on the base image (the scan's analysis
// of it) overlaps the base's extraction and the RUN, instead of following
// the extraction: no file of the base is extracted yet when it runs.
func TestBaseImageHookBeforeExtraction(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	busybox := testbed.BusyboxImage(t, testbed.WithFile("/etc/hook-marker", "x\n"))
	cache := t.TempDir() // the build's temporary directories are made under it
	extracted := func() []string {
		var found []string
		_ = filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && strings.HasSuffix(p, "/etc/hook-marker") {
				found = append(found, p)
			}
			return nil
		})
		return found
	}
	called, early := false, false
	hook := func(v1.Image, []string) { called, early = true, len(extracted()) == 0 }
	f := fixture{dockerfile: "FROM busybox\nRUN echo built > /built\n"}
	src := &memSource{images: map[string]v1.Image{"busybox": busybox}}
	// The base goes to a cache entry (not to memory), where it is found
	// after the build.
	if _, err := Build(context.Background(), f.request(t), WithImageSource(src), WithCacheDir(cache),
		withBaseEntryOnFirstUse(), WithBaseImageHook(hook)); err != nil {
		t.Fatal(err)
	}
	if !called || !early {
		t.Errorf("hook called %v, before the extraction %v; want both", called, early)
	}
	// The build's own directories are gone by now; the base cache keeps a
	// copy of the base (overlay lower directory or copy source).
	if len(extracted()) == 0 {
		t.Error("no extracted base found after the build: the test proves nothing")
	}
}
