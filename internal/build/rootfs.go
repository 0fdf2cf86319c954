package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/rootfs"
	"github.com/intesys/ship-action/internal/sandbox"
)

// rootDir returns the stage's root file system directory, extracting the
// stage's image into a private directory under the build's temporary
// directory on first use. From then on every layer the stage adds is
// applied to it too (syncRoot), so that it always equals the image.
func (st *stageState) rootDir() (string, error) {
	if st.root != "" {
		return st.root, nil
	}
	dir, err := os.MkdirTemp(st.b.tmpDir, fmt.Sprintf("rootfs-%d-", st.s.Index))
	if err != nil {
		return "", fmt.Errorf("creating root file system directory: %w", err)
	}
	// A USER other than root must be able to use "/" inside the chroot.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating root file system directory: %w", err)
	}
	layers, err := st.img.Layers()
	if err != nil {
		return "", fmt.Errorf("listing layers: %w", err)
	}
	st.b.opts.logger.Debug("extracting root file system", "stage", st.s.DisplayName(), "layers", len(layers))
	rep, err := rootfs.Extract(st.b.runCtx, dir, layers)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("extracting root file system: %w", err)
	}
	st.b.warnExtract(st.s.DisplayName(), rep)
	st.root = dir
	return dir, nil
}

// syncRoot applies l, a layer just appended to the stage, to the stage's
// root file system directory when there is one.
func (st *stageState) syncRoot(ctx context.Context, l v1.Layer) error {
	if st.root == "" {
		return nil
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("applying layer to root file system: %w", err)
	}
	defer rc.Close()
	rep, err := rootfs.Apply(ctx, st.root, rc)
	if err != nil {
		return fmt.Errorf("applying layer to root file system: %w", err)
	}
	st.b.warnExtract(st.s.DisplayName(), rep)
	return nil
}

// removeRoot deletes the stage's root file system directory.
func (st *stageState) removeRoot() {
	if st.root == "" {
		return
	}
	if err := os.RemoveAll(st.root); err != nil {
		st.b.opts.logger.Warn("removing root file system directory", "dir", st.root, "err", err)
	}
	st.root = ""
}

// warnExtract logs what an extraction could not reproduce.
func (b *builder) warnExtract(stage string, rep *rootfs.ExtractReport) {
	if rep == nil {
		return
	}
	if len(rep.SkippedDevices) > 0 || rep.SkippedOwners > 0 || rep.SkippedXattrs > 0 {
		b.opts.logger.Warn("root file system differs from the image",
			"stage", stage, "skipped_devices", len(rep.SkippedDevices),
			"skipped_owners", rep.SkippedOwners, "skipped_xattrs", rep.SkippedXattrs)
	}
}

// sandboxMode detects (or takes from the options) how RUN is isolated and
// logs it once per build.
func (b *builder) sandboxMode() sandbox.Mode {
	b.modeOnce.Do(func() {
		b.mode = b.opts.sandboxMode
		if b.mode == 0 {
			b.mode = sandbox.Detect()
		}
		b.opts.logger.Info(b.mode.Describe(), "sandbox", b.mode.String())
	})
	return b.mode
}

// absTemp returns the build's temporary directory as an absolute path.
func absTemp(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolving temporary directory: %w", err)
	}
	return abs, nil
}
