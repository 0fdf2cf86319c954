package action

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/build"
	"github.com/intesys/ship-action/internal/provenance"
	"github.com/intesys/ship-action/internal/registry"
	"github.com/intesys/ship-action/internal/scan"
)

// Attestation kinds of the attest input.
const (
	attestProvenance = "provenance"
	attestSBOM       = "sbom"
	attestNone       = "none"
)

// builderID names ship as the builder in provenance.
const builderID = "https://github.com/intesys/ship-action"

// Referrer is a document attached to a pushed image as an OCI referrer
// (an entry of the "referrers" output).
type Referrer struct {
	ArtifactType string `json:"artifact_type"`
	Digest       string `json:"digest"`  // of the referrer's manifest
	Subject      string `json:"subject"` // repo@digest of the image it refers to
}

// recordingSource is the build's image source, recording the images it
// resolved: the provenance's dependencies.
type recordingSource struct {
	build.ImageSource
	mu   sync.Mutex
	deps []provenance.Dependency
}

// Image implements build.ImageSource.
func (r *recordingSource) Image(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error) {
	img, err := r.ImageSource.Image(ctx, ref, platform)
	if err != nil {
		return img, err
	}
	if d, derr := img.Digest(); derr == nil {
		dep := provenance.Dependency{Ref: ref, Digest: d.String()}
		if platform.Architecture != "" {
			dep.Platform = platformName(platform)
		}
		r.mu.Lock()
		r.deps = append(r.deps, dep)
		r.mu.Unlock()
	}
	return img, nil
}

// resolved returns the images recorded so far.
func (r *recordingSource) resolved() []provenance.Dependency {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]provenance.Dependency(nil), r.deps...)
}

// attests says whether cfg.Attest asks for kind.
func (c Config) attests(kind string) bool { return slices.Contains(c.Attest, kind) }

// attacher pushes documents as referrers of an image; *registry.Client is
// one.
type attacher interface {
	Attach(ctx context.Context, subject string, arts ...registry.Artifact) ([]v1.Hash, error)
}

// attachment is what attachDocuments needs of a run.
type attachment struct {
	cfg     Config
	built   *builtImage
	sc      *scanOutcome // nil without a scan
	env     func(string) string
	started time.Time
	epoch   *time.Time // SOURCE_DATE_EPOCH: times are left out, for a reproducible document

	versions map[string]string // ship's and Trivy's, for the provenance; set by attachDocuments
}

// attachDocuments attaches the provenance of each platform's image, and
// the SBOM of the scanned image, in every repository pushed to. Failures
// are warnings: the image is pushed, and the run goes on.
func attachDocuments(ctx context.Context, a attachment, client imageClient, log *slog.Logger) []Referrer {
	at, ok := client.(attacher)
	if !ok {
		return nil
	}
	if ship, trivy := buildVersions(); ship != "" || trivy != "" {
		a.versions = map[string]string{}
		if ship != "" {
			a.versions["ship"] = ship
		}
		if trivy != "" {
			a.versions["trivy"] = trivy
		}
	}
	var sbom *registry.Artifact
	if a.sc != nil && a.cfg.SBOM != "" && a.cfg.attests(attestSBOM) {
		art, err := a.sbom(ctx)
		if err != nil {
			log.Warn("SBOM not attached", "err", err)
		} else {
			sbom = &art
		}
	}
	var refs []Referrer
	for _, repo := range tagRepositories(a.cfg.Tags) {
		for i, d := range a.built.imageDigests {
			var arts []registry.Artifact
			if a.cfg.attests(attestProvenance) {
				art, err := a.provenance(repo, i)
				if err != nil {
					log.Warn("provenance not attached", "err", err)
				} else {
					arts = append(arts, art)
				}
			}
			if i == 0 && sbom != nil { // the scanned image
				arts = append(arts, *sbom)
			}
			if len(arts) == 0 {
				continue
			}
			subject := repo + "@" + d.String()
			digests, err := at.Attach(ctx, subject, arts...)
			for j, h := range digests {
				refs = append(refs, Referrer{ArtifactType: arts[j].ArtifactType, Digest: h.String(), Subject: subject})
			}
			if err != nil {
				log.Warn("attaching documents to the pushed image failed; the image is pushed", "err", err)
			}
		}
	}
	return refs
}

// provenance is the SLSA provenance of the image of platform i, named
// as in repo.
func (a attachment) provenance(repo string, i int) (registry.Artifact, error) {
	res := a.built.results[i]
	b := provenance.Build{
		Subject:      provenance.Subject{Name: repo, Digest: a.built.imageDigests[i].String()},
		Dockerfile:   dockerfilePath(a.cfg),
		Target:       a.cfg.Target,
		BuildArgs:    provenance.PublicBuildArgs(a.cfg.BuildArgs),
		Source:       ciSource(a.env),
		Bases:        a.built.bases[i],
		BuilderID:    builderID,
		InvocationID: ciInvocation(a.env),
	}
	if cf, err := res.Image.ConfigFile(); err == nil && cf.Architecture != "" {
		b.Platform = platformName(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant})
	}
	b.BuilderVersion = a.versions
	if a.epoch == nil {
		b.Started, b.Finished = a.started.UTC(), time.Now().UTC()
	}
	data, err := provenance.Statement(b)
	if err != nil {
		return registry.Artifact{}, err
	}
	return registry.Artifact{
		ArtifactType: provenance.MediaType,
		MediaType:    provenance.MediaType,
		Data:         data,
		Annotations:  map[string]string{provenance.PredicateTypeAnnotation: provenance.PredicateType},
	}, nil
}

// sbom is the scan's SBOM in the format of the sbom input.
func (a attachment) sbom(ctx context.Context) (registry.Artifact, error) {
	doc, err := a.sc.sbomDocument(ctx, a.cfg)
	if err != nil {
		return registry.Artifact{}, err
	}
	mt := "application/vnd.cyclonedx+json"
	if format, _ := scan.ParseSBOMFormat(a.cfg.SBOM); format == scan.SBOMSPDX { // parsed by sbomDocument
		mt = "application/spdx+json"
	}
	return registry.Artifact{ArtifactType: mt, MediaType: mt, Data: doc}, nil
}

// tagRepositories are the repositories of tags, each once, in order.
func tagRepositories(tags []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range tags {
		tag, err := parseTag(t)
		if err != nil {
			continue
		}
		repo := tag.Context().Name()
		if !seen[repo] {
			seen[repo] = true
			out = append(out, repo)
		}
	}
	return out
}

// ciSource is the git checkout the CI job built, nil off CI.
func ciSource(env func(string) string) *provenance.Source {
	switch {
	case env("GITHUB_ACTIONS") == "true" && env("GITHUB_REPOSITORY") != "" && env("GITHUB_SHA") != "":
		return &provenance.Source{URI: githubServer(env) + "/" + env("GITHUB_REPOSITORY"), Ref: env("GITHUB_REF"), Commit: env("GITHUB_SHA")}
	case env("GITLAB_CI") == "true" && env("CI_PROJECT_URL") != "" && env("CI_COMMIT_SHA") != "":
		return &provenance.Source{URI: env("CI_PROJECT_URL"), Ref: env("CI_COMMIT_REF_NAME"), Commit: env("CI_COMMIT_SHA")}
	}
	return nil
}

// ciInvocation is the URL of the CI run or job, "" off CI.
func ciInvocation(env func(string) string) string {
	switch {
	case env("GITHUB_ACTIONS") == "true" && runURL(env) != "":
		if n := env("GITHUB_RUN_ATTEMPT"); n != "" {
			return runURL(env) + "/attempts/" + n
		}
		return runURL(env)
	case env("GITLAB_CI") == "true":
		return env("CI_JOB_URL")
	}
	return ""
}
