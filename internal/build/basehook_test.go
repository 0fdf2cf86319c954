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

// TestBaseImageHook: the hook is called once, when the first RUN of the
// target's FROM chain runs, with the chain's base image and its
// instructions; not for a RUN of another stage, and not when every RUN
// of the chain comes from the layer cache.
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
	calls := build(df)
	if len(calls) != 1 {
		t.Fatalf("hook called %d times, want once", len(calls))
	}
	want, _ := busybox.Digest()
	if got, _ := calls[0].base.Digest(); got != want {
		t.Errorf("hook got base %s, want the chain's base busybox %s", got, want)
	}
	if !slices.Equal(calls[0].instructions, []string{"COPY", "COPY", "RUN", "CMD"}) {
		t.Errorf("instructions %v, want the chain's COPY COPY RUN CMD", calls[0].instructions)
	}
	if again := build(df); len(again) != 0 {
		t.Errorf("with every RUN cached the hook was called %d times", len(again))
	}
	// Only a stage outside the chain runs RUN: no call.
	if c := build("FROM other AS tool\nRUN echo tool2 > /tool\nFROM busybox\nCOPY --from=tool /tool /tool\n"); len(c) != 0 {
		t.Errorf("a RUN outside the target's chain called the hook %d times", len(c))
	}
}

// TestBaseImageHookAfterExtraction: the hook is called once the RUN's root
// file system is ready, so that work on the base does not compete with its
// extraction: the base's files are on disk when it runs.
func TestBaseImageHookAfterExtraction(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	busybox := testbed.BusyboxImage(t, testbed.WithFile("/etc/hook-marker", "x\n"))
	cache := t.TempDir()
	var found []string
	hook := func(v1.Image, []string) {
		_ = filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && strings.HasSuffix(p, "/etc/hook-marker") {
				found = append(found, p)
			}
			return nil
		})
	}
	f := fixture{dockerfile: "FROM busybox\nRUN echo built > /built\n"}
	src := &memSource{images: map[string]v1.Image{"busybox": busybox}}
	if _, err := Build(context.Background(), f.request(t), WithImageSource(src), WithCacheDir(cache),
		WithBaseImageHook(hook)); err != nil {
		t.Fatal(err)
	}
	if len(found) == 0 {
		t.Error("the hook ran before the base image was extracted for the RUN")
	}
}
