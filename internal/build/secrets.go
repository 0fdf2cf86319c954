package build

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/intesys/ship-action/internal/sandbox"
)

// secretDir is where a secret mount without a target goes, as in BuildKit.
const secretDir = "/run/secrets"

// secretFileMode is the mode of a secret file when the mount sets none.
const secretFileMode = 0o400

// secretMount adds the secret mount m of a RUN to ms, with BuildKit's
// semantics (dispatchSecret and the executor's secret mount): the id is the
// mount's id, else its source, else the base name of its target; without
// env the secret is a read-only file at the target (default
// /run/secrets/<id>; a relative target is in the working directory) with
// the mount's uid, gid and mode (default 0:0 0400);
// with env it is in the process environment (and also a file when a target
// is given). A secret the request lacks fails the RUN when the mount is
// required; otherwise the file is absent and the variable is empty.
//
// The file is written to a private directory (0700) under the build's
// temporary directory, removed when ms is released.
func (st *stageState) secretMount(ms *runMountSet, m *instructions.Mount) error {
	id := m.CacheID
	if m.Source != "" {
		id = m.Source
	}
	if id == "" {
		if m.Target == "" {
			return fmt.Errorf("invalid secret mount: one of id, source, target required")
		}
		id = path.Base(m.Target)
	}
	value, ok := st.b.req.Secrets[id]
	if !ok && m.Required {
		return fmt.Errorf("secret %s not provided (--secret id=%s,...)", id, id)
	}
	if m.Env != nil {
		// BuildKit sets the variable, empty, for a missing optional secret.
		ms.env = append(ms.env, *m.Env+"="+string(value))
	}
	target := m.Target
	if target == "" && m.Env == nil {
		target = path.Join(secretDir, path.Base(id))
	}
	if target == "" || !ok {
		return nil
	}
	target = mountTarget(target, st.cfg.Config.WorkingDir)
	if target == "/" {
		return fmt.Errorf("invalid secret mount target %q", m.Target)
	}

	dir, err := os.MkdirTemp(st.b.tmpDir, "secret-")
	if err != nil {
		return fmt.Errorf("preparing secret %s: %w", id, err)
	}
	ms.cleanup = append(ms.cleanup, func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("preparing secret %s: %w", id, err)
	}
	file := filepath.Join(dir, "secret")
	if err := writeSecretFile(file, value, m); err != nil {
		return fmt.Errorf("preparing secret %s: %w", id, err)
	}
	ms.list = append(ms.list, sandbox.Mount{Source: file, Target: target, ReadOnly: true, File: true})
	return nil
}

// writeSecretFile writes a secret's value to the new file p with the
// owner and mode the mount asks for.
func writeSecretFile(p string, value []byte, m *instructions.Mount) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	uid, gid := 0, 0
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	mode := fs.FileMode(secretFileMode)
	if m.Mode != nil {
		mode = fs.FileMode(*m.Mode & 0o777)
	}
	if err := os.Lchown(p, uid, gid); err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// withEnv returns env with the KEY=VALUE items of extra, each replacing
// the variable of the same name.
func withEnv(env, extra []string) []string {
	if len(extra) == 0 {
		return env
	}
	out := make([]string, 0, len(env)+len(extra))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for _, e := range extra {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// redactSecrets replaces every secret value of the request in s by "***":
// RUN output is logged and quoted in errors, and a command may print a
// secret.
func (b *builder) redactSecrets(s string) string {
	for _, v := range b.req.Secrets {
		for _, part := range secretParts(v) {
			s = strings.ReplaceAll(s, part, "***")
		}
	}
	return s
}

// secretParts returns what must be redacted of a secret value: the whole
// value and each of its lines, trimmed, without empty ones.
func secretParts(v []byte) []string {
	var out []string
	if s := strings.TrimSpace(string(v)); s != "" {
		out = append(out, s)
	}
	for _, line := range strings.Split(string(v), "\n") {
		if line = strings.TrimSpace(line); line != "" && (len(out) == 0 || line != out[0]) {
			out = append(out, line)
		}
	}
	return out
}
