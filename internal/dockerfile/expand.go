package dockerfile

import (
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Env is an ordered set of variables for expansion. It implements
// shell.EnvGetter. The zero value is empty and ready to use.
type Env struct {
	keys []string
	vals map[string]string
}

// NewEnv returns an Env holding "KEY=value" pairs (as in an image config's Env).
func NewEnv(kvs []string) *Env {
	e := &Env{}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		e.Set(k, v)
	}
	return e
}

// Get returns the value of key.
func (e *Env) Get(key string) (string, bool) {
	if e == nil || e.vals == nil {
		return "", false
	}
	v, ok := e.vals[key]
	return v, ok
}

// Keys returns the keys in the order they were first set.
func (e *Env) Keys() []string {
	if e == nil {
		return nil
	}
	return append([]string(nil), e.keys...)
}

// Set adds key or replaces its value, keeping its position.
func (e *Env) Set(key, value string) {
	if e.vals == nil {
		e.vals = map[string]string{}
	}
	if _, ok := e.vals[key]; !ok {
		e.keys = append(e.keys, key)
	}
	e.vals[key] = value
}

// Clone returns an independent copy of e.
func (e *Env) Clone() *Env {
	c := &Env{}
	if e == nil {
		return c
	}
	for _, k := range e.keys {
		c.Set(k, e.vals[k])
	}
	return c
}

// IsProxyArg reports whether key is one of the predefined proxy ARGs
// (HTTP_PROXY, HTTPS_PROXY, FTP_PROXY, NO_PROXY, ALL_PROXY, any case) that
// BuildKit passes to RUN without a declaration and never writes to the
// image. Elsewhere they behave as ordinary ARGs: they must be declared to
// be expanded.
func IsProxyArg(key string) bool {
	switch strings.ToLower(key) {
	case "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy":
		return true
	}
	return false
}

// FormatPlatform formats p as "os/arch[/variant]".
func FormatPlatform(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// HostPlatform returns linux/<GOARCH> (with the variant BuildKit uses for arm).
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// GlobalArgs returns the variables visible to FROM lines and inherited by a
// stage's value-less ARG: BuildKit's automatic platform args
// (BUILDPLATFORM, TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT, ...,
// TARGETSTAGE) followed by the ARGs declared before the first FROM, with
// buildArgs overriding defaults. Defaults are expanded in order.
func (df *Dockerfile) GlobalArgs(buildArgs map[string]string, buildPlatform, targetPlatform v1.Platform, targetStage string) (*Env, error) {
	if targetStage == "" {
		targetStage = "default"
	}
	env := &Env{}
	for _, kv := range [...][2]string{
		{"BUILDPLATFORM", FormatPlatform(buildPlatform)},
		{"BUILDOS", buildPlatform.OS},
		{"BUILDOSVERSION", buildPlatform.OSVersion},
		{"BUILDARCH", buildPlatform.Architecture},
		{"BUILDVARIANT", buildPlatform.Variant},
		{"TARGETPLATFORM", FormatPlatform(targetPlatform)},
		{"TARGETOS", targetPlatform.OS},
		{"TARGETOSVERSION", targetPlatform.OSVersion},
		{"TARGETARCH", targetPlatform.Architecture},
		{"TARGETVARIANT", targetPlatform.Variant},
		{"TARGETSTAGE", targetStage},
	} {
		v := kv[1]
		if ov, ok := buildArgs[kv[0]]; ok {
			v = ov
		}
		env.Set(kv[0], v)
	}
	lex := df.Lex()
	for _, a := range df.MetaArgs {
		if v, ok := buildArgs[a.Key]; ok {
			env.Set(a.Key, v)
			continue
		}
		if a.Value == nil {
			continue
		}
		v, _, err := lex.ProcessWord(*a.Value, env)
		if err != nil {
			return nil, &Error{Location: a.Location, Err: err}
		}
		env.Set(a.Key, v)
	}
	return env, nil
}

// StageArg resolves the value of an ARG inside a stage as BuildKit does: a
// build arg wins; else the default, expanded against the stage's variables;
// else, for an ARG without a default, the global value. It returns nil when
// the ARG has no value.
func (df *Dockerfile) StageArg(arg instructions.KeyValuePairOptional, buildArgs map[string]string, globals, stageEnv shell.EnvGetter) (*string, error) {
	if v, ok := buildArgs[arg.Key]; ok {
		return &v, nil
	}
	if arg.Value != nil {
		v, _, err := df.Lex().ProcessWord(*arg.Value, stageEnv)
		if err != nil {
			return nil, err
		}
		return &v, nil
	}
	if globals != nil {
		if v, ok := globals.Get(arg.Key); ok {
			return &v, nil
		}
	}
	return nil, nil
}

// Lex returns BuildKit's shell lexer with the Dockerfile's escape token.
func (df *Dockerfile) Lex() *shell.Lex {
	esc := df.Escape
	if esc == 0 {
		esc = '\\'
	}
	return shell.NewLex(esc)
}

// Expand replaces variables in cmd in place, exactly where BuildKit does:
// the instructions that support single-word expansion (all but ARG, whose
// defaults are expanded by StageArg, and those in exec/shell form: RUN, CMD,
// ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD), and heredoc bodies of COPY/ADD
// marked for expansion. EXPOSE ports are expanded into words by ExposePorts.
// COPY --from is never expanded. Errors are *Error at the command's line.
func (df *Dockerfile) Expand(cmd Command, env shell.EnvGetter) error {
	if _, isArg := cmd.Command.(*instructions.ArgCommand); isArg {
		return nil
	}
	lex := df.Lex()
	if ex, ok := cmd.Command.(instructions.SupportsSingleWordExpansion); ok {
		err := ex.Expand(func(word string) (string, error) {
			w, _, err := lex.ProcessWord(word, env)
			return w, err
		})
		if err != nil {
			return &Error{Location: cmd.Location, Err: err}
		}
	}
	if ex, ok := cmd.Command.(instructions.SupportsSingleWordExpansionRaw); ok {
		raw := shell.NewLex('\\')
		raw.SkipProcessQuotes = true
		err := ex.ExpandRaw(func(word string) (string, error) {
			w, _, err := raw.ProcessWord(word, env)
			return w, err
		})
		if err != nil {
			return &Error{Location: cmd.Location, Err: err}
		}
	}
	return nil
}

// ExposePorts expands the EXPOSE arguments into words, as BuildKit does.
func (df *Dockerfile) ExposePorts(c *instructions.ExposeCommand, env shell.EnvGetter) ([]string, error) {
	lex := df.Lex()
	var ports []string
	for _, p := range c.Ports {
		ws, err := lex.ProcessWords(p, env)
		if err != nil {
			return nil, err
		}
		ports = append(ports, ws...)
	}
	return ports, nil
}

// ExpandWord expands one word (a FROM reference, a --platform value).
func (df *Dockerfile) ExpandWord(word string, env shell.EnvGetter) (string, error) {
	w, _, err := df.Lex().ProcessWord(word, env)
	if err != nil {
		return "", fmt.Errorf("expanding %q: %w", word, err)
	}
	return w, nil
}
