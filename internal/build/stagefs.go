package build

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/rootfs"
)

// baseInfo describes the external base image under a stage (the image of
// its FROM, or of the FROM at the bottom of a chain of stages): how many of
// the stage's layers are the base's, and the base's history.
type baseInfo struct {
	layers  int
	history []v1.History
	known   bool // false for scratch: the stage owns every layer
}

// fhsTopDirs are the top-level directories a Linux base image may have.
// A path under one of them is always looked up in the base's layers.
func fhsTopDir(name string) bool {
	switch name {
	case "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media",
		"mnt", "opt", "proc", "root", "run", "sbin", "srv", "sys", "tmp", "usr", "var":
		return true
	}
	return false
}

// mayHave reports whether the base image may contain the top-level entry
// first. Reading the answer from the base costs downloading its layers, so
// it is skipped for names that the base cannot plausibly have: not an FHS
// directory, and not mentioned by any instruction in the base's history
// (a base built with `WORKDIR /app` or `COPY . /app` mentions "app"; a base
// without history is always asked).
func (b baseInfo) mayHave(first string) bool {
	if !b.known || b.layers == 0 {
		return false
	}
	if fhsTopDir(first) || len(b.history) == 0 {
		return true
	}
	for _, h := range b.history {
		if strings.Contains(h.CreatedBy, first) || strings.Contains(h.Comment, first) {
			return true
		}
	}
	return false
}

// stageFS is the file system of a stage as COPY, ADD, WORKDIR and --chown
// see it. Lookups of paths the base may have go to the whole image; other
// lookups see only the layers this build added, so that a COPY-only build
// on a remote base never downloads the base's layers.
type stageFS struct {
	full *rootfs.View // base + own layers
	own  *rootfs.View // own layers only; nil when there is no base
	base baseInfo
}

// newStageFS returns the view of img whose first base.layers layers are
// the base's.
func newStageFS(img v1.Image, base baseInfo) (*stageFS, error) {
	s := &stageFS{full: rootfs.NewView(img), base: base}
	if !base.known || base.layers == 0 {
		return s, nil
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	if base.layers > len(layers) {
		return nil, fmt.Errorf("image has %d layers, fewer than its base's %d", len(layers), base.layers)
	}
	own, err := mutate.AppendLayers(empty.Image, layers[base.layers:]...)
	if err != nil {
		return nil, fmt.Errorf("viewing the stage's own layers: %w", err)
	}
	s.own = rootfs.NewView(own)
	return s, nil
}

// pick returns the view that answers for name.
func (s *stageFS) pick(name string) *rootfs.View {
	if s.own == nil {
		return s.full
	}
	first, _, _ := strings.Cut(name, "/")
	if name == "." || first == "" || s.base.mayHave(first) {
		return s.full
	}
	return s.own
}

// Open implements fs.FS.
func (s *stageFS) Open(name string) (fs.File, error) { return s.pick(name).Open(name) }

// Stat implements fs.StatFS.
func (s *stageFS) Stat(name string) (fs.FileInfo, error) { return s.pick(name).Stat(name) }

// Lstat implements fs.ReadLinkFS.
func (s *stageFS) Lstat(name string) (fs.FileInfo, error) { return s.pick(name).Lstat(name) }

// ReadLink implements fs.ReadLinkFS.
func (s *stageFS) ReadLink(name string) (string, error) { return s.pick(name).ReadLink(name) }

// ReadFile implements fs.ReadFileFS.
func (s *stageFS) ReadFile(name string) ([]byte, error) { return s.pick(name).ReadFile(name) }

// ReadDir implements fs.ReadDirFS.
func (s *stageFS) ReadDir(name string) ([]fs.DirEntry, error) { return s.pick(name).ReadDir(name) }
