package provenance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Media and predicate types of the statement.
const (
	// StatementType is the in-toto Statement v1 type ("_type").
	StatementType = "https://in-toto.io/Statement/v1"
	// PredicateType is the SLSA Provenance v1 predicate type.
	PredicateType = "https://slsa.dev/provenance/v1"
	// MediaType is the media type of an in-toto statement in JSON, for
	// the layer (and artifact type) of an OCI referrer.
	MediaType = "application/vnd.in-toto+json"
	// PredicateTypeAnnotation is the annotation key BuildKit uses to name
	// the predicate type of an in-toto layer or manifest.
	PredicateTypeAnnotation = "in-toto.io/predicate-type"
	// DefaultBuildType is the buildType written when Build.BuildType is
	// empty: a Dockerfile built by ship, with the external parameters
	// source, dockerfile, target, platform and buildArgs.
	DefaultBuildType = "https://github.com/intesys/ship-action/provenance/dockerfile/v1"
)

// Build describes one image build. It has no field for secrets; see
// BuildArgs.
type Build struct {
	// Subject is the built image: its name (e.g. "ghcr.io/org/app") and
	// manifest digest ("sha256:<hex>"). Both are required.
	Subject Subject
	// BuildType is the predicate's buildType; DefaultBuildType when empty.
	BuildType string
	// Dockerfile is the path of the Dockerfile in the source, Target the
	// stage built ("" for the last), Platform the platform built (e.g.
	// "linux/amd64").
	Dockerfile, Target, Platform string
	// BuildArgs are written as given: leave out secret-looking names with
	// PublicBuildArgs first.
	BuildArgs map[string]string
	// Source is the git checkout built, when known.
	Source *Source
	// Bases are the images the build pulled (FROM, COPY --from), in the
	// order they were resolved; duplicates are written once.
	Bases []Dependency
	// BuilderID identifies the builder (runDetails.builder.id), e.g.
	// "https://github.com/intesys/ship-action@v1". Required.
	BuilderID string
	// BuilderVersion maps components to versions, e.g. {"ship": "1.2.3"}.
	BuilderVersion map[string]string
	// InvocationID identifies this run, e.g. a CI job URL.
	InvocationID string
	// Started and Finished are the build's start and end; zero times are
	// left out.
	Started, Finished time.Time
}

// Subject is the artifact the statement is about.
type Subject struct {
	Name   string
	Digest string // "sha256:<hex>"
}

// Source is a git checkout.
type Source struct {
	// URI is the repository URL, e.g. "https://github.com/org/app";
	// user information, query and fragment are removed.
	URI string
	// Ref is the ref built, e.g. "refs/heads/main"; optional.
	Ref string
	// Commit is the commit id (hex).
	Commit string
}

// Dependency is an image the build resolved.
type Dependency struct {
	// Ref is the reference as resolved, e.g. "alpine:3.20",
	// "ghcr.io/org/base:1" or "alpine@sha256:...".
	Ref string
	// Digest is the manifest digest pulled, "sha256:<hex>". Required.
	Digest string
	// Platform is the platform pulled, e.g. "linux/arm64"; optional.
	Platform string
}

// Statement returns b as a SLSA Provenance v1 in-toto statement in JSON.
// The same Build always gives the same bytes.
func Statement(b Build) ([]byte, error) {
	if b.Subject.Name == "" {
		return nil, errors.New("provenance: the subject has no name")
	}
	subjDigest, err := digestSet(b.Subject.Digest)
	if err != nil {
		return nil, fmt.Errorf("provenance: subject %s: %w", b.Subject.Name, err)
	}
	if b.BuilderID == "" {
		return nil, errors.New("provenance: the builder id is empty")
	}
	buildType := b.BuildType
	if buildType == "" {
		buildType = DefaultBuildType
	}
	params := externalParameters{
		Dockerfile: b.Dockerfile,
		Target:     b.Target,
		Platform:   b.Platform,
		BuildArgs:  b.BuildArgs,
	}
	var deps []resourceDescriptor
	if b.Source != nil {
		src, err := sourceDescriptor(*b.Source)
		if err != nil {
			return nil, err
		}
		params.Source = src.URI
		deps = append(deps, src)
	}
	seen := map[string]bool{}
	for _, d := range b.Bases {
		rd, err := imageDescriptor(d)
		if err != nil {
			return nil, err
		}
		key := rd.URI + " " + d.Digest
		if seen[key] {
			continue
		}
		seen[key] = true
		deps = append(deps, rd)
	}
	st := statement{
		Type:          StatementType,
		Subject:       []resourceDescriptor{{Name: b.Subject.Name, Digest: subjDigest}},
		PredicateType: PredicateType,
		Predicate: predicate{
			BuildDefinition: buildDefinition{
				BuildType:            buildType,
				ExternalParameters:   params,
				ResolvedDependencies: deps,
			},
			RunDetails: runDetails{
				Builder:  builder{ID: b.BuilderID, Version: b.BuilderVersion},
				Metadata: metadataOf(b),
			},
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(st); err != nil {
		return nil, fmt.Errorf("provenance: encoding the statement: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// secretWords are the parts of a build argument name that make it look
// secret: the words of BuildKit's SecretsUsedInArgOrEnv check.
var secretWords = []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PWORD", "KEY", "CREDENTIAL", "AUTH"}

// PublicBuildArgs returns the build arguments whose names do not look
// secret: names containing TOKEN, SECRET, PASSWORD, PASSWD, PWORD, KEY,
// CREDENTIAL or AUTH (in any case) are dropped, and so are the proxy
// arguments (names ending in PROXY, e.g. HTTPS_PROXY, whose URLs may hold
// credentials; docker leaves them out of the image history too). It errs
// on the side of dropping (e.g. AUTHOR, MONKEY). The result is a new map,
// never nil.
func PublicBuildArgs(args map[string]string) map[string]string {
	out := make(map[string]string, len(args))
	for k, v := range args {
		if !looksSecret(k) {
			out[k] = v
		}
	}
	return out
}

func looksSecret(name string) bool {
	up := strings.ToUpper(name)
	if strings.HasSuffix(up, "PROXY") {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(up, w) {
			return true
		}
	}
	return false
}

// digestSet turns "alg:hex" into {"alg": "hex"}.
func digestSet(d string) (map[string]string, error) {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg == "" || !isLowerHex(hex) {
		return nil, fmt.Errorf("digest %q is not ALGORITHM:HEX", d)
	}
	return map[string]string{alg: hex}, nil
}

func isLowerHex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// sourceDescriptor returns the git source as "git+<uri>@<ref>" with its
// commit.
func sourceDescriptor(s Source) (resourceDescriptor, error) {
	if s.URI == "" {
		return resourceDescriptor{}, errors.New("provenance: the source has no URI")
	}
	uri := "git+" + strings.TrimPrefix(publicURI(s.URI), "git+")
	if s.Ref != "" {
		uri += "@" + s.Ref
	}
	rd := resourceDescriptor{URI: uri}
	if s.Commit != "" {
		if !isLowerHex(s.Commit) {
			return resourceDescriptor{}, fmt.Errorf("provenance: source commit %q is not a hex commit id", s.Commit)
		}
		rd.Digest = map[string]string{"gitCommit": s.Commit}
	}
	return rd, nil
}

// publicURI removes user information, query and fragment from a URL, and
// the user from an scp-like address ("user@host:path").
func publicURI(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		u.User = nil
		u.RawQuery, u.ForceQuery = "", false
		u.Fragment, u.RawFragment = "", ""
		return u.String()
	}
	if at := strings.LastIndex(s, "@"); at >= 0 {
		if colon := strings.Index(s, ":"); colon < 0 || at < colon {
			return s[at+1:]
		}
	}
	return s
}

// imageDescriptor returns an image as a package URL in BuildKit's form,
// "pkg:docker/<familiar name>@<tag>?digest=...&platform=...", with its
// digest.
func imageDescriptor(d Dependency) (resourceDescriptor, error) {
	if d.Ref == "" {
		return resourceDescriptor{}, errors.New("provenance: a base image has no reference")
	}
	ds, err := digestSet(d.Digest)
	if err != nil {
		return resourceDescriptor{}, fmt.Errorf("provenance: base image %s: %w", d.Ref, err)
	}
	return resourceDescriptor{URI: imagePURL(d.Ref, d.Platform), Digest: ds}, nil
}

// imagePURL returns ref (and platform, when set) as a docker package URL.
// Docker Hub names are shortened as docker does ("alpine",
// "org/app"); a reference without tag or digest has the tag latest; a
// pinned digest becomes the digest qualifier.
func imagePURL(ref, platform string) string {
	rest, pinned, _ := strings.Cut(ref, "@")
	repo, tag := rest, ""
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		repo, tag = rest[:i], rest[i+1:]
	}
	if tag == "" && pinned == "" {
		tag = "latest"
	}
	var b strings.Builder
	b.WriteString("pkg:docker/")
	for i, seg := range strings.Split(familiarName(repo), "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(url.PathEscape(seg))
	}
	if tag != "" {
		b.WriteByte('@')
		b.WriteString(url.PathEscape(tag))
	}
	q := ""
	if pinned != "" {
		q += "&digest=" + url.QueryEscape(pinned)
	}
	if platform != "" {
		q += "&platform=" + url.QueryEscape(platform)
	}
	if q != "" {
		b.WriteByte('?')
		b.WriteString(q[1:])
	}
	return b.String()
}

// familiarName shortens a Docker Hub repository as docker does:
// "docker.io/library/alpine" is "alpine", "docker.io/org/app" is
// "org/app"; other registries are kept.
func familiarName(repo string) string {
	first, rest, ok := strings.Cut(repo, "/")
	if !ok {
		return repo
	}
	switch first {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		repo = rest
	default:
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			return repo
		}
	}
	if name, ok := strings.CutPrefix(repo, "library/"); ok && !strings.Contains(name, "/") {
		return name
	}
	return repo
}

func metadataOf(b Build) *metadata {
	m := metadata{InvocationID: b.InvocationID, StartedOn: timestamp(b.Started), FinishedOn: timestamp(b.Finished)}
	if m == (metadata{}) {
		return nil
	}
	return &m
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// The statement's JSON shape (in-toto Statement v1, SLSA Provenance v1).
type (
	statement struct {
		Type          string               `json:"_type"`
		Subject       []resourceDescriptor `json:"subject"`
		PredicateType string               `json:"predicateType"`
		Predicate     predicate            `json:"predicate"`
	}
	resourceDescriptor struct {
		Name   string            `json:"name,omitempty"`
		URI    string            `json:"uri,omitempty"`
		Digest map[string]string `json:"digest,omitempty"`
	}
	predicate struct {
		BuildDefinition buildDefinition `json:"buildDefinition"`
		RunDetails      runDetails      `json:"runDetails"`
	}
	buildDefinition struct {
		BuildType            string               `json:"buildType"`
		ExternalParameters   externalParameters   `json:"externalParameters"`
		ResolvedDependencies []resourceDescriptor `json:"resolvedDependencies,omitempty"`
	}
	externalParameters struct {
		Source     string            `json:"source,omitempty"`
		Dockerfile string            `json:"dockerfile,omitempty"`
		Target     string            `json:"target,omitempty"`
		Platform   string            `json:"platform,omitempty"`
		BuildArgs  map[string]string `json:"buildArgs,omitempty"`
	}
	runDetails struct {
		Builder  builder   `json:"builder"`
		Metadata *metadata `json:"metadata,omitempty"`
	}
	builder struct {
		ID      string            `json:"id"`
		Version map[string]string `json:"version,omitempty"`
	}
	metadata struct {
		InvocationID string `json:"invocationId,omitempty"`
		StartedOn    string `json:"startedOn,omitempty"`
		FinishedOn   string `json:"finishedOn,omitempty"`
	}
)
