package action

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// LoadScan reads the Config of `ship scan IMAGE [flags]`: args are the
// command line after "scan", IMAGE first; the flags, inputs and variables
// are those of Load (the scan and registry ones apply). The Config has
// ScanImage set; Run then scans that image from its registry instead of
// building.
func LoadScan(args []string, lookup LookupEnv) (Config, error) {
	if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
		return Config{Help: true}, nil
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return Config{}, usageErrorf("ship scan needs an image: ship scan IMAGE [flags]")
	}
	image := args[0]
	if _, err := name.ParseReference(image); err != nil {
		return Config{}, usageErrorf("ship scan: invalid image reference %q", image)
	}
	c, err := parse(args[1:], lookup)
	if err != nil {
		return Config{}, err
	}
	if c.Help {
		return c, nil
	}
	c.ScanImage = image
	c.Scan = true
	c.Push = false
	if len(c.Tags) > 0 {
		return Config{}, usageErrorf("ship scan pushes nothing: tags are not accepted")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// scanRemoteImage is Run for `ship scan IMAGE`: the image is read from its
// registry (layers only as the scan reads them), scanned with no build
// origins (findings are marked base, without a Dockerfile location), and
// recorded in rec for the same outputs and exit codes as a build.
func scanRemoteImage(ctx context.Context, cfg Config, o options, log *slog.Logger, mask func(string), rec *runRecord) error {
	client := o.client
	if client == nil {
		regCfg := cfg
		regCfg.Tags = nil
		if t, err := name.NewTag(cfg.ScanImage); err == nil {
			regCfg.Tags = []string{t.String()} // explicit credentials apply to its registry
		}
		c, err := newRegistryClient(regCfg, o.lookup, log, mask)
		if err != nil {
			return withCode(CodeUsage, fmt.Errorf("configuring registry access: %w", err))
		}
		client = c
	}
	platform := v1.Platform{}
	if len(cfg.Platforms) == 1 {
		platform, _ = parsePlatform(cfg.Platforms[0])
	}
	img, err := client.Image(ctx, cfg.ScanImage, platform)
	if err != nil {
		return withCode(CodeScan, fmt.Errorf("reading %s: %w", cfg.ScanImage, err))
	}
	digest, err := img.Digest()
	if err != nil {
		return withCode(CodeScan, fmt.Errorf("reading %s: %w", cfg.ScanImage, err))
	}
	sc, err := runScan(ctx, cfg, scanTarget{img: img, name: cfg.ScanImage, platform: platform}, client, o.lookup, log)
	if err != nil {
		return err
	}
	ref, _ := name.ParseReference(cfg.ScanImage) // checked by LoadScan
	image := ref.Context().Name() + "@" + digest.String()
	out := Outputs{
		Digest:   digest.String(),
		Image:    image,
		Tags:     []string{},
		Metadata: Metadata{Digest: digest.String(), Image: image, Tags: []string{}, Stages: []StageSummary{}},
		scanOnly: true,
	}
	out.Scan, err = finishScan(ctx, cfg, sc, cfg.ScanImage, digest.String(), o.stderr)
	if err != nil {
		return err
	}
	if m, err := img.Manifest(); err == nil {
		out.Metadata.Size = m.Config.Size
		for _, l := range m.Layers {
			out.Metadata.Size += l.Size
		}
	}
	rec.out, rec.sc, rec.img = &out, sc, img
	return nil
}
