package scan

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AnalyseBase analyses the layers of base, the image a build starts FROM,
// into the layer cache (Trivy's, in the cache dir or on the Trivy server)
// while the build goes on, so that Scan of the built image finds them
// analysed. instructions are the names of the instructions the build runs
// after FROM ("RUN", "COPY", "CMD"...; see build.WithBaseImageHook).
//
// The layers are analysed exactly as Scan of the built image will analyse
// them, because the cache does not tell the two apart: Trivy leaves secrets
// out of the layers it takes for the base image's, found from the history
// (those before the last CMD that precedes the last layer). AnalyseBase
// shows Trivy the base followed by one empty layer, which makes it take the
// same layers for the base as in the built image, and does nothing (0, nil)
// when instructions could make the two differ: no layer after FROM, a CMD
// before the last layer while the base's history does not end with one, or
// ONBUILD triggers in the base. It returns how many layers it analysed.
func AnalyseBase(ctx context.Context, base v1.Image, instructions []string, opts ...Option) (int, error) {
	o, err := newOptions(opts)
	if err != nil {
		return 0, err
	}
	img, ok, err := aheadImage(base, instructions)
	if err != nil || !ok {
		return 0, err
	}

	trivyMu.Lock()
	defer trivyMu.Unlock()
	restore := routeTrivyLogs(o.logger)
	defer restore()
	c, fsCache, err := o.layerCache(ctx)
	if err != nil {
		return 0, err
	}
	if fsCache != nil {
		defer fsCache.Close()
	}
	counting := &countingCache{ArtifactCache: c}
	art, err := o.newArtifact(img, counting)
	if err != nil {
		return 0, fmt.Errorf("preparing base image analysis: %w", err)
	}
	if _, err := art.Inspect(ctx); err != nil {
		return 0, fmt.Errorf("analysing base image: %w", oneLineErr(err))
	}
	return len(counting.analysed()), nil
}

// aheadImage is base followed by an empty layer, standing for the layers
// the build adds; ok is false when Trivy could take other layers of the
// built image for the base's than of this one (see AnalyseBase).
func aheadImage(base v1.Image, instructions []string) (v1.Image, bool, error) {
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, false, fmt.Errorf("reading base image config: %w", err)
	}
	if len(cf.Config.OnBuild) > 0 {
		return nil, false, nil
	}
	last := -1 // the last instruction that can add a layer
	for i, in := range instructions {
		switch in {
		case "RUN", "COPY", "ADD", "WORKDIR":
			last = i
		}
	}
	if last < 0 {
		return nil, false, nil
	}
	if slices.Contains(instructions[:last], "CMD") && !endsWithCMD(cf.History) {
		return nil, false, nil
	}
	mt := types.DockerLayer
	if m, err := base.MediaType(); err == nil && m == types.OCIManifestSchema1 {
		mt = types.OCILayer
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(make([]byte, 1024))), nil // an empty tar: two zero blocks
	}, tarball.WithMediaType(mt))
	if err != nil {
		return nil, false, fmt.Errorf("preparing base image analysis: %w", err)
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{}})
	if err != nil {
		return nil, false, fmt.Errorf("preparing base image analysis: %w", err)
	}
	return img, true, nil
}

// endsWithCMD reports whether a CMD entry (Trivy's test: created by a CMD
// instruction, no layer) follows the last entry that made a layer.
func endsWithCMD(history []v1.History) bool {
	for i := len(history) - 1; i >= 0; i-- {
		h := history[i]
		if !h.EmptyLayer {
			return false
		}
		if strings.HasPrefix(h.CreatedBy, "/bin/sh -c #(nop)  CMD") || strings.HasPrefix(h.CreatedBy, "CMD") {
			return true
		}
	}
	return false
}
