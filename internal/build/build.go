package build

import (
	"context"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/dockerfile"
)

// ImageSource resolves a base image reference (as written in FROM or
// COPY --from, after ARG expansion, e.g. "debian:bookworm" or
// "localhost:5000/base@sha256:...") to an image for the given platform.
// Implementations must not download layers eagerly.
type ImageSource interface {
	Image(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error)
}

// Request says what to build.
type Request struct {
	ContextDir     string            // the build context directory
	DockerfilePath string            // path of the Dockerfile (absolute or relative to the working directory)
	DockerfileName string            // name used in locations, e.g. "Dockerfile"; defaults to the base name of DockerfilePath
	Target         string            // stage name or index to build; empty: the last stage
	BuildArgs      map[string]string // --build-arg values, already resolved
	Labels         map[string]string // --label values, added to the final image
	Platform       v1.Platform       // target platform; zero value: linux/<host arch>
	// ContextExcludes are patterns (.dockerignore syntax, relative to the
	// context) that are never part of the context, whatever .dockerignore
	// says: ship's own outputs when they are written inside the context.
	ContextExcludes []string
	// SourceDateEpoch, when set, clamps file times in layers and sets history
	// and config creation times, as BuildKit does with SOURCE_DATE_EPOCH.
	SourceDateEpoch *time.Time
	// Secrets are the values of RUN --mount=type=secret by id (from
	// --secret id=ID,src=FILE|env=VAR). They are visible only to the RUN
	// that mounts them: never logged (RUN output is redacted), never in a
	// layer, a history entry, the config or a cache key.
	Secrets map[string][]byte
	// SSH maps the ids RUN --mount=type=ssh may name ("default" when the
	// mount names none) to the unix socket of an SSH agent on the host
	// (from --ssh default, --ssh id=SOCKET or an agent ship serves for a
	// key file). RUN sees a socket forwarding to it; no key reaches a layer.
	SSH map[string]string
}

// Result is a built image and what it took to build it.
type Result struct {
	Image  v1.Image
	Stages []Stage // the stages that were built, in build order
	// Layers describes each layer of Image, bottom first: where it came
	// from, for findings that point at their cause.
	Layers []LayerInfo
}

// LayerInfo says what made one layer of the image.
type LayerInfo struct {
	DiffID v1.Hash
	Digest v1.Hash
	// Base is true for the layers of the external base image (FROM an
	// image, directly or through the stages the target is built on).
	Base bool
	// Instruction is the instruction that made the layer as the build
	// reports it ("COPY app /app"), "FROM <image>" for base layers.
	Instruction string
	// Location is the instruction's Dockerfile line (the FROM line for
	// base layers).
	Location dockerfile.Location
	// ContextFiles maps the regular files a COPY or ADD took from the build
	// context (image path, no leading "/") to their path in the context.
	ContextFiles map[string]string
}

// Stage reports one built stage.
type Stage struct {
	Index int
	Name  string // the AS name, empty when unnamed
	Base  string // the FROM reference after expansion ("scratch", a stage name, or an image ref)
	Steps []Step
}

// Step reports one instruction.
type Step struct {
	Instruction string // as written after expansion, e.g. "COPY app /app"
	Location    dockerfile.Location
	Duration    time.Duration
	EmptyLayer  bool  // metadata-only instruction
	LayerSize   int64 // compressed size of the layer it added, 0 when EmptyLayer
	Cached      bool  // a RUN whose layer came from the layer cache
}
