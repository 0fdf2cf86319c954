package build

import (
	"context"
	"fmt"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/intesys/ship-action/internal/dockerfile"
)

// How a stage's cache key is kept: st.key hashes everything the stage's
// file system depends on up to its last cached RUN (the base image's
// digest, or the stage it is built on, then each RUN's key), and
// st.pending the layers added since by other instructions (COPY, ADD,
// WORKDIR, a RUN that cannot be cached), which fold into the key by their
// content (contentKey) only when a RUN needs it. A COPY whose files did
// not change (only their mtimes, as in a fresh checkout) leaves the key
// as it was. Metadata instructions are not in the chain: the RUN key
// holds the config they change that RUN sees (env, user, workdir).

// startKey sets the stage's key from where it starts: an image (by
// digest), scratch, or a stage.
func (st *stageState) startKey(img v1.Image, base *stageResult) {
	if !st.b.keyed {
		return
	}
	platform := dockerfile.FormatPlatform(st.platform)
	switch {
	case base != nil:
		st.key, st.pending = base.key, append([]v1.Layer(nil), base.pending...)
	case img == nil:
		st.key = (&cacheKey{}).add("scratch", platform).sum()
	default:
		d, err := img.Digest()
		if err != nil {
			st.key = "" // not cacheable
			return
		}
		st.key = (&cacheKey{}).add("image", d.String(), platform).sum()
	}
}

// currentKey folds the pending layers into the key and returns it; ""
// when the stage cannot be cached.
func (st *stageState) currentKey() (string, error) {
	if st.key == "" {
		return "", nil
	}
	key, err := foldKey(st.key, st.pending)
	if err != nil {
		return "", err
	}
	st.key, st.pending = key, nil
	return key, nil
}

// foldKey chains key on the content of each of pending, in order.
func foldKey(key string, pending []v1.Layer) (string, error) {
	for _, l := range pending {
		ck, err := contentKey(l)
		if err != nil {
			return "", fmt.Errorf("hashing layer for the cache: %w", err)
		}
		key = (&cacheKey{}).add(key, "layer", ck).sum()
	}
	return key, nil
}

// runKey returns the cache key of a RUN with argv args: the stage's key,
// the command and its heredocs, the environment, user, working directory,
// network and the mounts' identities (ids, targets, the key of a stage a
// mount reads; never a secret's value). "" when the RUN cannot be cached:
// a bind mount of the build context (its content is not hashed).
func (st *stageState) runKey(ctx context.Context, c *instructions.RunCommand, args []string) (string, error) {
	prev, err := st.currentKey()
	if err != nil || prev == "" {
		return "", err
	}
	k := (&cacheKey{}).add(prev, "RUN", dockerfile.FormatPlatform(st.platform))
	k.add("args", strconv.Itoa(len(args))).add(args...)
	for _, f := range c.Files {
		k.add("heredoc", f.Name, f.Data, strconv.FormatBool(f.Chomp))
	}
	env := st.runEnv()
	k.add("env", strconv.Itoa(len(env))).add(env...)
	k.add("user", st.cfg.Config.User, "workdir", st.cfg.Config.WorkingDir,
		"network", instructions.GetNetwork(c), "security", instructions.GetSecurity(c))
	for _, m := range instructions.GetMounts(c) {
		from := m.From
		if m.Type == instructions.MountTypeBind || m.Type == instructions.MountTypeCache {
			if m.From == "" && m.Type == instructions.MountTypeBind {
				return "", nil
			}
			if m.From != "" {
				if from, err = st.sourceKey(ctx, m.From); err != nil || from == "" {
					return "", err
				}
			}
		}
		env := ""
		if m.Env != nil {
			env = *m.Env
		}
		k.add("mount", string(m.Type), m.Target, m.Source, from, m.CacheID, string(m.CacheSharing),
			strconv.FormatBool(m.ReadOnly), strconv.FormatBool(m.Required), env,
			optUint(m.Mode), optUint(m.UID), optUint(m.GID))
	}
	return k.sum(), nil
}

// sourceKey is the key of what a mount's from= names: a stage's key or an
// image's digest.
func (st *stageState) sourceKey(ctx context.Context, from string) (string, error) {
	src, isStage, err := st.b.plan.Source(from)
	if err != nil {
		return "", err
	}
	if isStage {
		res, err := st.b.stage(ctx, src)
		if err != nil {
			return "", err
		}
		if res.key == "" {
			return "", nil
		}
		return foldKey(res.key, res.pending)
	}
	img, err := st.b.image(ctx, from, st.platform)
	if err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return "image:" + d.String(), nil
}

func optUint(p *uint64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatUint(*p, 10)
}

// cachedRun adds l, the layer a RUN with key made in an earlier build, in
// place of running it: to the image, and to the root file system when the
// stage has one.
func (st *stageState) cachedRun(ctx context.Context, key string, l v1.Layer, args []string) (int64, error) {
	size, err := l.Size()
	if err != nil {
		return -1, err
	}
	if hook := st.b.opts.layerHook; hook != nil && st.b.feedsTarget(st.s) {
		hook(l)
	}
	if err := st.addLayer(l); err != nil {
		return -1, err
	}
	if err := st.syncRoot(ctx, l); err != nil {
		return -1, err
	}
	st.commitWith("RUN "+runCommandString(args, st.args, st.env), true, true)
	st.key = key
	if st.step != nil {
		st.step.Cached = true
	}
	st.b.opts.logger.Debug("RUN cached", "stage", st.s.DisplayName(), "key", key[:12])
	return size, nil
}

// storeRun records the layer a RUN with key just made; key "" (a RUN that
// cannot be cached) chains the stage's key on the layer's content instead.
func (st *stageState) storeRun(key string, l v1.Layer) {
	if !st.b.keyed {
		return
	}
	if key == "" {
		st.pending = append(st.pending, l)
		return
	}
	st.key = key
	if st.b.cache != nil {
		if err := st.b.cache.put(key, l); err != nil {
			st.b.opts.logger.Warn("layer cache: not stored", "error", err.Error())
		}
	}
	if store := st.b.opts.store; store != nil && !st.b.opts.storeReadOnly {
		st.b.storeWait.Add(1)
		go func() {
			defer st.b.storeWait.Done()
			if err := store.Put(st.b.storeCtx, key, l); err != nil {
				st.b.storeFailed(err)
			}
		}()
	}
}

// lookupRun returns the layer cached for a RUN's key: from the local
// layer cache, else from the layer store.
func (st *stageState) lookupRun(ctx context.Context, key string) (v1.Layer, bool) {
	if key == "" || st.b.opts.noCacheReuse || st.noCacheStage() {
		return nil, false
	}
	if st.b.cache != nil {
		if l, ok := st.b.cache.get(key); ok {
			return l, true
		}
	}
	if store := st.b.opts.store; store != nil {
		l, ok, err := store.Get(ctx, key)
		if err != nil {
			st.b.storeFailed(err)
			return nil, false
		}
		return l, ok
	}
	return nil, false
}

// noCacheStage reports whether WithoutCacheReuse names the stage.
func (st *stageState) noCacheStage() bool {
	for _, s := range st.b.opts.noCacheStages {
		if s == st.s.Name || s == strconv.Itoa(st.s.Index) {
			return true
		}
	}
	return false
}

// storeFailed logs a failure of the layer store, once per build.
func (b *builder) storeFailed(err error) {
	b.storeWarn.Do(func() {
		b.opts.logger.Warn("layer store: cache not used or not updated; the build goes on", "error", err.Error())
	})
}
