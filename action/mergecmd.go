package action

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sethvargo/go-githubactions"

	"github.com/intesys/ship-action/internal/registry"
)

// LoadMerge reads the command line of `ship merge IMAGE... --tag TAG`:
// the per-platform images first (tags or digests, e.g. the image outputs
// of a build matrix), then the flags of a build (tags, registry access).
func LoadMerge(args []string, lookup LookupEnv) (Config, error) {
	if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
		return Config{Help: true}, nil
	}
	var images []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if _, err := name.ParseReference(args[0]); err != nil {
			return Config{}, usageErrorf("ship merge: invalid image reference %q", args[0])
		}
		images = append(images, args[0])
		args = args[1:]
	}
	if len(images) == 0 {
		return Config{}, usageErrorf("ship merge needs images: ship merge IMAGE... --tag TAG")
	}
	c, err := parse(args, lookup)
	if err != nil {
		return Config{}, err
	}
	if c.Help {
		return c, nil
	}
	if len(c.Tags) == 0 {
		return Config{}, usageErrorf("ship merge needs at least one --tag for the index")
	}
	c.MergeImages = images
	c.Push, c.Scan = true, false
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// indexPusher writes an index of per-platform images; *registry.Client
// is one.
type indexPusher interface {
	PushIndex(ctx context.Context, refs, tags []string) (v1.Hash, []registry.MergedImage, error)
}

// mergeImages is Run for `ship merge`: the index of cfg.MergeImages is
// pushed to every tag, and the outputs (digest, image, tags) name it.
func mergeImages(ctx context.Context, cfg Config, o options, gha *githubactions.Action, env func(string) string, log *slog.Logger, mask func(string)) error {
	client := o.client
	if client == nil {
		c, err := newRegistryClient(cfg, o.lookup, log, mask)
		if err != nil {
			return withCode(CodeUsage, fmt.Errorf("configuring registry access: %w", err))
		}
		client = c
	}
	ip, ok := client.(indexPusher)
	if !ok {
		return withCode(CodeInternal, fmt.Errorf("ship merge: this registry client cannot push an index"))
	}
	digest, merged, err := ip.PushIndex(ctx, cfg.MergeImages, cfg.Tags)
	if err != nil {
		return withCode(CodePush, err)
	}
	image := digest.String()
	if t, err := parseTag(cfg.Tags[0]); err == nil {
		image = t.Context().Name() + "@" + digest.String()
	}
	out := Outputs{Digest: digest.String(), Image: image, Tags: cfg.Tags,
		Metadata: Metadata{Digest: digest.String(), Image: image, Tags: cfg.Tags, Pushed: true, Stages: []StageSummary{}}}
	var plats []string
	for _, m := range merged {
		plats = append(plats, m.Platform.String())
	}
	log.Info("index pushed", "digest", digest.String(), "platforms", strings.Join(plats, ","), "tags", strings.Join(cfg.Tags, ","))
	if env("GITHUB_ACTIONS") == "true" {
		if err := writeGitHubOutputs(gha, env, out); err != nil {
			return withCode(CodeInternal, err)
		}
		if env("GITHUB_STEP_SUMMARY") != "" {
			if err := protect(func() { gha.AddStepSummary(mergeSummary(out, merged)) }); err != nil {
				return withCode(CodeInternal, err)
			}
		}
	}
	if env("GITLAB_CI") == "true" {
		if err := writeDotenv(o.workDir, out); err != nil {
			return withCode(CodeInternal, err)
		}
	}
	return writeJSONLine(o.stdout, out)
}

// mergeSummary is the job summary of ship merge: the index and its images.
func mergeSummary(out Outputs, merged []registry.MergedImage) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### ship: multi-platform index `%s`\n\n", out.Image)
	b.WriteString("| Platform | Image |\n|---|---|\n")
	for _, m := range merged {
		fmt.Fprintf(&b, "| %s | `%s` |\n", m.Platform.String(), m.Digest.String())
	}
	b.WriteString("\n**Tags:**\n")
	for _, t := range out.Tags {
		fmt.Fprintf(&b, "- `%s`\n", t)
	}
	return b.String()
}
