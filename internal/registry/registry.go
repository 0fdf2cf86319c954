package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// retryStatusCodes returns the HTTP answers retried with backoff.
func retryStatusCodes() []int {
	return []int{
		http.StatusRequestTimeout,
		http.StatusTooManyRequests,
		http.StatusInternalServerError,
		http.StatusBadGateway,
		http.StatusServiceUnavailable,
		http.StatusGatewayTimeout,
	}
}

// Client resolves and pushes images. It implements build.ImageSource. It is
// safe for concurrent use.
type Client struct {
	opts           options
	transport      http.RoundTripper
	gitlab         credential // from CI_REGISTRY_*; registry "" when unset
	pushRegistries map[string]bool

	cfgOnce sync.Once
	cfg     *configfile.ConfigFile
	cfgErr  error

	mu      sync.Mutex
	secrets map[string]struct{}
	// known maps a registry to the blobs known to be in one of its
	// repositories, so pushes to another repository can mount them.
	known map[string]map[v1.Hash]name.Repository
}

// New returns a Client configured by opts.
func New(opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("configuring registry client: %w", err)
		}
	}
	c := &Client{
		opts:           o,
		transport:      newTransport(o.transport, o.insecure),
		pushRegistries: map[string]bool{},
		secrets:        map[string]struct{}{},
		known:          map[string]map[v1.Hash]name.Repository{},
	}
	for _, t := range o.pushTags {
		tag, err := name.NewTag(t)
		if err != nil {
			return nil, fmt.Errorf("parsing tag %q: %w", t, err)
		}
		c.pushRegistries[tag.RegistryStr()] = true
	}
	if reg, ok := o.lookup("CI_REGISTRY"); ok && reg != "" {
		user, _ := o.lookup("CI_REGISTRY_USER")
		pass, _ := o.lookup("CI_REGISTRY_PASSWORD")
		norm, err := normalizeRegistry(reg)
		switch {
		case err != nil:
			o.logger.Warn("ignoring CI_REGISTRY", "error", err)
		case user != "" && pass != "":
			c.gitlab = credential{registry: norm, username: user, password: pass}
		}
	}
	for _, cr := range o.explicit {
		c.addSecret(cr.password)
	}
	c.addSecret(o.githubToken)
	c.addSecret(c.gitlab.password)
	return c, nil
}

// remoteOptions are the options of every remote call.
func (c *Client) remoteOptions(ctx context.Context, auth authn.Authenticator) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(auth),
		remote.WithTransport(c.transport),
		remote.WithRetryBackoff(c.opts.backoff),
		remote.WithRetryStatusCodes(retryStatusCodes()...),
		remote.WithUserAgent("ship-action"),
	}
}

// Image resolves ref (a tag or digest reference) for platform and returns
// the image without downloading its layers: only the manifest (and index)
// are fetched now, the config and layers when they are read. A docker.io
// reference is tried at each mirror first. The zero platform means
// linux/GOARCH.
func (c *Client) Image(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error) {
	r, err := c.parseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: %w", ref, err)
	}
	if platform.OS == "" && platform.Architecture == "" {
		platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	candidates := []name.Reference{r}
	if r.Context().RegistryStr() == name.DefaultRegistry && len(c.opts.mirrors) > 0 {
		candidates = candidates[:0]
		for _, m := range c.opts.mirrors {
			mr, err := c.onMirror(r, m)
			if err != nil {
				return nil, err
			}
			candidates = append(candidates, mr)
		}
		candidates = append(candidates, r)
	}
	var mirrorErrs []string
	for _, cand := range candidates[:len(candidates)-1] {
		img, err := c.image(ctx, cand, ref, platform)
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil {
			return nil, c.scrub(err)
		}
		reg := cand.Context().RegistryStr()
		err = c.scrub(err)
		c.opts.logger.Warn("registry mirror failed, trying the next source", "mirror", reg, "image", ref, "error", err)
		mirrorErrs = append(mirrorErrs, reg+": "+err.Error())
	}
	img, err := c.image(ctx, candidates[len(candidates)-1], ref, platform)
	if err != nil {
		if len(mirrorErrs) > 0 {
			err = fmt.Errorf("%w (mirrors tried first: %s)", err, strings.Join(mirrorErrs, "; "))
		}
		return nil, c.scrub(err)
	}
	return img, nil
}

// onMirror rewrites a docker.io reference to the same repository on mirror.
func (c *Client) onMirror(r name.Reference, mirror string) (name.Reference, error) {
	s := mirror + "/" + r.Context().RepositoryStr()
	switch r := r.(type) {
	case name.Digest:
		s += "@" + r.DigestStr()
	default:
		s += ":" + r.Identifier()
	}
	mr, err := c.parseReference(s)
	if err != nil {
		return nil, fmt.Errorf("parsing mirror reference %q: %w", s, err)
	}
	return mr, nil
}

// image fetches ref's manifest from one registry and picks platform from an
// index. display is the reference as the user wrote it.
func (c *Client) image(ctx context.Context, ref name.Reference, display string, platform v1.Platform) (v1.Image, error) {
	reg := ref.Context().RegistryStr()
	cred, err := c.resolve(reg, c.pushRegistries)
	if err != nil {
		return nil, err
	}
	c.opts.logger.Debug("resolving image", "image", ref.String(), "credentials", cred.source)
	opts := c.remoteOptions(ctx, cred.auth)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, c.describe(err, display, reg, cred.source, false)
	}
	var img v1.Image
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, c.describe(err, display, reg, cred.source, false)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, c.describe(err, display, reg, cred.source, false)
		}
		child, err := pickPlatform(im, platform)
		if err != nil {
			return nil, fmt.Errorf("image %s in registry %s: %w", display, reg, err)
		}
		if img, err = idx.Image(child.Digest); err != nil {
			return nil, c.describe(err, display, reg, cred.source, false)
		}
	case desc.MediaType.IsImage():
		if img, err = desc.Image(); err != nil {
			return nil, c.describe(err, display, reg, cred.source, false)
		}
	default:
		return nil, fmt.Errorf("image %s in registry %s is not an image (media type %s)", display, reg, desc.MediaType)
	}
	if m, err := img.Manifest(); err == nil {
		for _, l := range m.Layers {
			c.remember(reg, ref.Context(), l.Digest)
		}
	}
	return img, nil
}

// pickPlatform returns the index entry for platform.
func pickPlatform(im *v1.IndexManifest, want v1.Platform) (v1.Descriptor, error) {
	if want.Architecture == "arm64" && want.Variant == "v8" {
		want.Variant = ""
	}
	var have []string
	for _, m := range im.Manifests {
		if !m.MediaType.IsImage() {
			continue
		}
		p := v1.Platform{OS: "linux", Architecture: "amd64"}
		if m.Platform != nil {
			p = *m.Platform
		}
		if p.OS == "unknown" {
			continue // attestation manifests
		}
		if p.Satisfies(want) {
			return m, nil
		}
		have = append(have, p.String())
	}
	return v1.Descriptor{}, fmt.Errorf("no %s variant (the index has: %s)", want.String(), strings.Join(have, ", "))
}

// remember records that blob h is in repo.
func (c *Client) remember(reg string, repo name.Repository, h v1.Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.known[reg]
	if m == nil {
		m = map[v1.Hash]name.Repository{}
		c.known[reg] = m
	}
	if _, ok := m[h]; !ok {
		m[h] = repo
	}
}

// mountSources returns the blobs known to be in other repositories of
// repo's registry.
func (c *Client) mountSources(repo name.Repository) map[v1.Hash]name.Repository {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[v1.Hash]name.Repository{}
	for h, r := range c.known[repo.RegistryStr()] {
		if r.RepositoryStr() != repo.RepositoryStr() {
			out[h] = r
		}
	}
	return out
}

// describe turns a registry error into a one-line message for users.
func (c *Client) describe(err error, ref, reg, source string, push bool) error {
	switch code := statusOf(err); code {
	case http.StatusNotFound:
		if !push {
			return fmt.Errorf("image %s not found in registry %s", ref, reg)
		}
	case http.StatusUnauthorized, http.StatusForbidden:
		return &AuthError{Registry: reg, Source: source, StatusCode: code, Push: push, Err: c.scrub(err)}
	}
	if nc := networkCause(err); nc != "" {
		return fmt.Errorf("reaching registry %s: %s", reg, nc)
	}
	if push {
		return c.scrub(fmt.Errorf("pushing %s: %w", ref, err))
	}
	return c.scrub(fmt.Errorf("resolving %s: %w", ref, err))
}

// pushGroup is the tags of one repository.
type pushGroup struct {
	repo name.Repository
	tags []name.Tag
}

// Push writes img under every tag and returns its digest. All tags point at
// the same digest: the image is written once per repository (blobs the
// registry has are skipped, blobs known to be in another repository of the
// same registry are mounted), then the other tags of that repository are
// set with manifest PUTs. Transient failures are retried with backoff. When
// a tag cannot be written, Push stops and returns a *PushError listing the
// tags written and not written; a 401 or 403 cause is an *AuthError.
func (c *Client) Push(ctx context.Context, img v1.Image, tags []string) (v1.Hash, error) {
	return c.push(ctx, img, tags, func(tag name.Tag, opts []remote.Option) error {
		return c.writeImage(tag, img, opts)
	})
}

// writeImage writes img, its blobs and its manifest, under ref: blobs
// known to be in another repository of the registry are mounted.
func (c *Client) writeImage(ref name.Reference, img v1.Image, opts []remote.Option) error {
	hinted := &mountHints{Image: img, registry: ref.Context().RegistryStr(), from: c.mountSources(ref.Context())}
	if err := remote.Write(ref, hinted, opts...); err != nil {
		return err
	}
	c.rememberImage(ref.Context(), img)
	return nil
}

// manifestOwner is what push writes: an image or an index.
type manifestOwner interface {
	Digest() (v1.Hash, error)
	RawManifest() ([]byte, error)
	MediaType() (types.MediaType, error)
}

// push writes m under every tag: write puts it, with everything it
// refers to, under the first tag of each repository; the other tags of
// that repository are set with manifest PUTs.
func (c *Client) push(ctx context.Context, m manifestOwner, tags []string, write func(name.Tag, []remote.Option) error) (v1.Hash, error) {
	if len(tags) == 0 {
		return v1.Hash{}, errors.New("pushing image: no tags given")
	}
	digest, err := m.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("computing image digest: %w", err)
	}
	raw, err := m.RawManifest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading manifest: %w", err)
	}
	mt, err := m.MediaType()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading manifest media type: %w", err)
	}
	var groups []*pushGroup
	byRepo := map[string]*pushGroup{}
	pushRegs := c.pushRegistriesCopy()
	seen := map[string]bool{}
	for _, t := range tags {
		tag, err := c.parseTag(t)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("parsing tag %q: %w", t, err)
		}
		if seen[tag.String()] {
			continue
		}
		seen[tag.String()] = true
		pushRegs[tag.RegistryStr()] = true
		key := tag.Context().String()
		g := byRepo[key]
		if g == nil {
			g = &pushGroup{repo: tag.Context()}
			byRepo[key] = g
			groups = append(groups, g)
		}
		g.tags = append(g.tags, tag)
	}

	var written []string
	fail := func(gi, ti int, cause error) (v1.Hash, error) {
		var not []string
		for i := gi; i < len(groups); i++ {
			start := 0
			if i == gi {
				start = ti
			}
			for _, t := range groups[i].tags[start:] {
				not = append(not, t.String())
			}
		}
		return digest, &PushError{Digest: digest, Written: written, NotWritten: not, Err: cause}
	}
	for gi, g := range groups {
		reg := g.repo.RegistryStr()
		cred, err := c.resolve(reg, pushRegs)
		if err != nil {
			return fail(gi, 0, c.scrub(err))
		}
		c.opts.logger.Info("pushing", "repository", g.repo.String(), "digest", digest.String(), "credentials", cred.source)
		opts := c.remoteOptions(ctx, cred.auth)
		if err := write(g.tags[0], opts); err != nil {
			return fail(gi, 0, c.describe(err, g.tags[0].String(), reg, cred.source, true))
		}
		written = append(written, g.tags[0].String())
		for ti, tag := range g.tags[1:] {
			if err := remote.Tag(tag, rawManifest{raw: raw, mt: mt}, opts...); err != nil {
				return fail(gi, ti+1, c.describe(err, tag.String(), reg, cred.source, true))
			}
			written = append(written, tag.String())
		}
		c.opts.logger.Info("pushed", "tags", strings.Join(written, ","), "digest", digest.String())
	}
	return digest, nil
}

// rememberImage records the blobs of img as present in repo.
func (c *Client) rememberImage(repo name.Repository, img v1.Image) {
	m, err := img.Manifest()
	if err != nil {
		return
	}
	reg := repo.RegistryStr()
	c.remember(reg, repo, m.Config.Digest)
	for _, l := range m.Layers {
		c.remember(reg, repo, l.Digest)
	}
}

// UploadLayer uploads the blob of l to the repository of tag, ahead of
// Push (which then finds it there and skips it): a build can hand each
// layer over as soon as it is written, or while it is (a layer whose
// Digest returns stream.ErrNotComputed is uploaded as it is read, and
// committed with the digest it has at the end), so that uploads overlap
// the rest of the build. Credentials are resolved as for Push.
func (c *Client) UploadLayer(ctx context.Context, tag string, l v1.Layer) error {
	t, err := c.parseTag(tag)
	if err != nil {
		return fmt.Errorf("parsing tag %q: %w", tag, err)
	}
	reg := t.RegistryStr()
	pushRegs := map[string]bool{reg: true}
	for r := range c.pushRegistries {
		pushRegs[r] = true
	}
	cred, err := c.resolve(reg, pushRegs)
	if err != nil {
		return c.scrub(err)
	}
	if err := remote.WriteLayer(t.Context(), l, c.remoteOptions(ctx, cred.auth)...); err != nil {
		return c.describe(err, t.Context().String(), reg, cred.source, true)
	}
	// A streamed layer knows its digest only now.
	if d, err := l.Digest(); err == nil {
		c.remember(reg, t.Context(), d)
	}
	return nil
}
