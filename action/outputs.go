package action

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/sethvargo/go-githubactions"

	"github.com/intesys/ship-action/internal/report/markdown"
)

// localTag names the image in --output-tar when no tag is given, so that
// docker load gives it a name.
const localTag = "ship.local/image:latest"

// dotenvFile is the GitLab dotenv report Run writes on GitLab CI.
const dotenvFile = "ship.env"

// Outputs are what a run reports: the GitHub step outputs, the GitLab
// dotenv variables (SHIP_DIGEST, SHIP_IMAGE, SHIP_TAGS) and the JSON line
// on stdout.
type Outputs struct {
	Digest   string   `json:"digest"`   // sha256:... of the image manifest
	Image    string   `json:"image"`    // repo@digest of the first tag, or the digest without tags
	Tags     []string `json:"tags"`     // the tags, as given
	Metadata Metadata `json:"metadata"` // the details
	// Scan holds the scan's outputs; nil when nothing was scanned.
	Scan *ScanOutputs `json:"scan,omitempty"`

	scanOnly bool // ship scan: no build to summarise
}

// Metadata is the "metadata" output (JSON).
type Metadata struct {
	Digest   string   `json:"digest"`
	Image    string   `json:"image"`
	Tags     []string `json:"tags"`
	Pushed   bool     `json:"pushed"`
	Platform string   `json:"platform,omitempty"`
	// Platforms are the images of a multi-platform build's index.
	Platforms []PlatformImage `json:"platforms,omitempty"`
	// Referrers are the documents attached to the pushed images.
	Referrers []Referrer     `json:"referrers,omitempty"`
	Size      int64          `json:"size"` // manifest, config and compressed layers, in bytes
	Stages    []StageSummary `json:"stages"`
}

// PlatformImage is one platform's image in a multi-platform index.
type PlatformImage struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
}

// StageSummary reports one built stage.
type StageSummary struct {
	Index int           `json:"index"`
	Name  string        `json:"name,omitempty"`
	Base  string        `json:"base"`
	Steps []StepSummary `json:"steps"`
}

// StepSummary reports one instruction.
type StepSummary struct {
	Instruction string `json:"instruction"`
	Line        int    `json:"line,omitempty"`
	DurationMS  int64  `json:"duration_ms"`
	LayerSize   int64  `json:"layer_size"`
	EmptyLayer  bool   `json:"empty_layer,omitempty"`
	Cached      bool   `json:"cached,omitempty"` // a RUN reused from the layer cache
}

// checkOutputs refuses, before anything is built, output paths Run must
// not overwrite: a directory that is neither empty nor an OCI layout, a
// tarball path that is a directory.
func checkOutputs(cfg Config) error {
	if cfg.Output != "" {
		if err := checkReplaceable(cfg.Output); err != nil {
			return &ExitError{Code: CodeUsage, Err: err}
		}
	}
	if cfg.OutputTar != "" {
		if fi, err := os.Stat(cfg.OutputTar); err == nil && fi.IsDir() {
			return usageErrorf("output-tar %s is a directory", cfg.OutputTar)
		}
	}
	return nil
}

// checkReplaceable says whether dir may be replaced by a new OCI layout: it
// does not exist, is empty, or holds an OCI layout (an oci-layout file).
func checkReplaceable(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking output %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("output %s exists and is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("checking output %s: %w", dir, err)
	}
	if len(entries) == 0 {
		return nil
	}
	if fi, err := os.Lstat(filepath.Join(dir, "oci-layout")); err == nil && fi.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("output %s exists and is not an OCI image layout; refusing to replace it", dir)
}

// contextExcludes returns ship's own outputs (the OCI layout directory and
// the tarball) that lie inside the build context, as context-relative
// patterns: the build never copies them into the image, whatever
// .dockerignore says, so `ship --context .` can run twice in a row.
func contextExcludes(cfg Config) []string {
	ctxAbs, err := filepath.Abs(cfg.Context)
	if err != nil {
		return nil
	}
	var out []string
	paths := []string{cfg.Output, cfg.OutputTar, cfg.CacheDir}
	if cfg.Scan {
		paths = append(paths, cfg.FindingsJSON, cfg.sbomFile(), cfg.SARIFFile)
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(ctxAbs, abs)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			continue
		}
		out = append(out, filepath.ToSlash(rel))
	}
	return out
}

// writeLayout writes img as an OCI image layout to dir, replacing a
// previous layout only once the new one is complete. Each tag becomes a
// manifest entry annotated with its name.
func writeLayout(dir string, add func(layout.Path, ...layout.Option) error, tags []string) (err error) {
	dir = filepath.Clean(dir)
	if err := checkReplaceable(dir); err != nil {
		return err
	}
	parent, base := filepath.Split(dir)
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", parent, err)
	}
	staging, err := os.MkdirTemp(parent, "."+base+".new-")
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	defer os.RemoveAll(staging)
	if err := os.Chmod(staging, 0o755); err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	p, err := layout.Write(staging, empty.Index)
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}
	if len(tags) == 0 {
		err = add(p)
	}
	for _, t := range tags {
		tag, perr := parseTag(t)
		if perr != nil {
			return perr
		}
		err = add(p, layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": tag.TagStr(),
			"io.containerd.image.name":          tag.Name(),
		}))
		if err != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("writing OCI layout %s: %w", dir, err)
	}

	old := ""
	if _, err := os.Lstat(dir); err == nil {
		oldDir, err := os.MkdirTemp(parent, "."+base+".old-")
		if err != nil {
			return fmt.Errorf("replacing %s: %w", dir, err)
		}
		defer os.RemoveAll(oldDir)
		old = filepath.Join(oldDir, "previous")
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("replacing %s: %w", dir, err)
		}
	}
	if err := os.Rename(staging, dir); err != nil {
		if old != "" {
			_ = os.Rename(old, dir)
		}
		return fmt.Errorf("replacing %s: %w", dir, err)
	}
	return nil
}

// writeTarball writes img to file as a docker load tarball named by every
// tag (localTag without tags), through a temporary file in the same
// directory.
func writeTarball(file string, img v1.Image, tags []string) error {
	refs := map[name.Tag]v1.Image{}
	if len(tags) == 0 {
		tags = []string{localTag}
	}
	for _, t := range tags {
		tag, err := parseTag(t)
		if err != nil {
			return err
		}
		refs[tag] = img
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp-")
	if err != nil {
		return fmt.Errorf("writing tarball %s: %w", file, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing tarball %s: %w", file, err)
	}
	if err := tarball.MultiWriteToFile(tmp, refs); err != nil {
		return fmt.Errorf("writing tarball %s: %w", file, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("writing tarball %s: %w", file, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("writing tarball %s: %w", file, err)
	}
	return nil
}

// makeOutputs gathers the outputs of a build. Stages are the first
// platform's.
func makeOutputs(b *builtImage, cfg Config) (Outputs, error) {
	size, err := b.size()
	if err != nil {
		return Outputs{}, err
	}
	digest, res := b.digest, b.results[0]
	tags := append([]string{}, cfg.Tags...)
	image := digest.String()
	if len(tags) > 0 {
		t, err := parseTag(tags[0])
		if err != nil {
			return Outputs{}, err
		}
		image = t.Context().Name() + "@" + digest.String()
	}
	md := Metadata{
		Digest: digest.String(),
		Image:  image,
		Tags:   tags,
		Pushed: cfg.Push,
		Size:   size,
		Stages: []StageSummary{},
	}
	if len(cfg.Platforms) == 1 {
		md.Platform = cfg.Platforms[0]
	}
	if b.index != nil {
		for i, p := range cfg.Platforms {
			md.Platforms = append(md.Platforms, PlatformImage{Platform: p, Digest: b.imageDigests[i].String()})
		}
	}
	for _, st := range res.Stages {
		ss := StageSummary{Index: st.Index, Name: st.Name, Base: st.Base, Steps: []StepSummary{}}
		for _, s := range st.Steps {
			ss.Steps = append(ss.Steps, StepSummary{
				Instruction: s.Instruction,
				Line:        s.Location.Line,
				DurationMS:  s.Duration.Milliseconds(),
				LayerSize:   s.LayerSize,
				EmptyLayer:  s.EmptyLayer,
				Cached:      s.Cached,
			})
		}
		md.Stages = append(md.Stages, ss)
	}
	return Outputs{Digest: md.Digest, Image: image, Tags: tags, Metadata: md}, nil
}

// writeGitHubOutputs sets the step outputs.
func writeGitHubOutputs(gha *githubactions.Action, env func(string) string, out Outputs) error {
	md, err := json.Marshal(out.Metadata)
	if err != nil {
		return fmt.Errorf("encoding metadata: %w", err)
	}
	if env("GITHUB_OUTPUT") == "" {
		return errors.New("writing GitHub outputs: GITHUB_OUTPUT is not set")
	}
	err = protect(func() {
		gha.SetOutput("digest", out.Digest)
		gha.SetOutput("image", out.Image)
		gha.SetOutput("tags", strings.Join(out.Tags, ","))
		gha.SetOutput("metadata", string(md))
		if out.Scan != nil {
			for _, kv := range out.Scan.outputPairs() {
				gha.SetOutput(kv[0], kv[1])
			}
		}
	})
	if err != nil {
		return fmt.Errorf("writing GitHub outputs: %w", err)
	}
	return nil
}

// writeJobSummary appends the job summary: the report (verdict, image,
// findings, layers) and, for a build, the time and layer size of each
// instruction. It is written for every run, failed ones included.
func writeJobSummary(gha *githubactions.Action, env func(string) string, rep markdown.Report, out *Outputs) error {
	if env("GITHUB_STEP_SUMMARY") == "" {
		return nil
	}
	sum, err := markdown.Summary(rep)
	if err != nil {
		return err
	}
	if out != nil && !out.scanOnly {
		sum += "\n" + stepsMarkdown(*out)
	}
	if err := protect(func() { gha.AddStepSummary(sum) }); err != nil {
		return fmt.Errorf("writing GitHub job summary: %w", err)
	}
	return nil
}

// stepsMarkdown renders the built stages and instructions with time and
// layer size, and whether the tags were pushed.
func stepsMarkdown(out Outputs) string {
	var b strings.Builder
	b.WriteString("#### Build steps\n\n")
	b.WriteString("| Stage | Line | Instruction | Time | Layer size |\n")
	b.WriteString("|---|---:|---|---:|---:|\n")
	for _, st := range out.Metadata.Stages {
		stage := fmt.Sprint(st.Index)
		if st.Name != "" {
			stage += " (" + st.Name + ")"
		}
		for _, s := range st.Steps {
			line := ""
			if s.Line > 0 {
				line = fmt.Sprint(s.Line)
			}
			layer := "–"
			if !s.EmptyLayer {
				layer = markdown.HumanSize(s.LayerSize)
			}
			took := (time.Duration(s.DurationMS) * time.Millisecond).String()
			if s.Cached {
				took += " (cached)"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n",
				mdCell(stage), line, mdCode(s.Instruction), took, layer)
		}
	}
	fmt.Fprintf(&b, "\n**Image:** `%s`  \n", out.Image)
	if len(out.Tags) == 0 {
		b.WriteString("**Tags:** none\n")
	} else {
		verb := "not pushed"
		if out.Metadata.Pushed {
			verb = "pushed"
		}
		fmt.Fprintf(&b, "**Tags** (%s):\n", verb)
		for _, t := range out.Tags {
			fmt.Fprintf(&b, "- `%s`\n", t)
		}
	}
	return b.String()
}

// mdCell escapes text for a Markdown table cell.
func mdCell(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ", "|", `\|`).Replace(s)
	return s
}

// mdCode renders s as inline code in a table cell.
func mdCode(s string) string {
	s = mdCell(s)
	if s == "" {
		return ""
	}
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if fence != "`" {
		s = " " + s + " "
	}
	return fence + s + fence
}

// writeDotenv writes ship.env for GitLab's dotenv report.
func writeDotenv(dir string, out Outputs) error {
	path := filepath.Join(dir, dotenvFile)
	content := fmt.Sprintf("SHIP_DIGEST=%s\nSHIP_IMAGE=%s\nSHIP_TAGS=%s\n",
		out.Digest, out.Image, strings.Join(out.Tags, ","))
	if out.Scan != nil {
		for _, kv := range out.Scan.outputPairs() {
			content += "SHIP_" + strings.ToUpper(strings.ReplaceAll(kv[0], "-", "_")) + "=" + kv[1] + "\n"
		}
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// writeJSONLine writes the outputs as one JSON object on one line.
func writeJSONLine(w io.Writer, out Outputs) error {
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encoding outputs: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing outputs: %w", err)
	}
	return nil
}
