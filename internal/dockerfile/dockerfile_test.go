package dockerfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func TestParse(t *testing.T) {
	t.Parallel()
	src := "# syntax=docker/dockerfile:1\n# escape=`\nARG A=1\nARG B\nFROM base:$A AS Build\nCOPY <<EOF /x\nhello\nEOF\nENV X=1 `\n  Y=2\n\nFROM build\nCMD [\"x\"]\n"
	df, err := Parse([]byte(src), "Dockerfile.dev")
	if err != nil {
		t.Fatal(err)
	}
	if df.Syntax != "docker/dockerfile:1" || df.Escape != '`' {
		t.Errorf("syntax %q escape %q", df.Syntax, df.Escape)
	}
	if len(df.MetaArgs) != 2 || df.MetaArgs[0].Key != "A" || *df.MetaArgs[0].Value != "1" || df.MetaArgs[1].Value != nil || df.MetaArgs[1].Location.Line != 4 {
		t.Errorf("meta args %+v", df.MetaArgs)
	}
	if len(df.Stages) != 2 {
		t.Fatalf("%d stages", len(df.Stages))
	}
	s := df.Stages[0]
	if s.Name != "build" || s.BaseName != "base:$A" || s.Location != (Location{File: "Dockerfile.dev", Line: 5, EndLine: 5}) {
		t.Errorf("stage 0 %+v", s)
	}
	if len(s.Commands) != 2 {
		t.Fatalf("%d commands", len(s.Commands))
	}
	cp, ok := s.Commands[0].Command.(*instructions.CopyCommand)
	if !ok || len(cp.SourceContents) != 1 || cp.SourceContents[0].Data != "hello\n" || s.Commands[0].Location.Line != 6 || s.Commands[0].Location.EndLine != 8 {
		t.Errorf("heredoc copy %+v at %+v", s.Commands[0].Command, s.Commands[0].Location)
	}
	if loc := s.Commands[1].Location; loc.Line != 9 || loc.EndLine != 10 {
		t.Errorf("ENV location %+v", loc)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, want string
	}{
		{"empty", "  \n", "Dockerfile: the Dockerfile cannot be empty"},
		{"no stage", "ARG A\n", "Dockerfile: dockerfile contains no stages to build"},
		{"instruction before FROM", "ENV A=1\nFROM scratch\n", "Dockerfile:1: no build stage in current context"},
		{"unknown instruction", "FROM scratch\n\nFOO x\n", "Dockerfile:3: unknown instruction: FOO"},
		{"bad flag", "FROM scratch\nCOPY --bogus a b\n", "Dockerfile:2: unknown flag: --bogus"},
		{"bad stage name", "FROM scratch AS 1x\n", "Dockerfile:1: invalid name for build stage"},
		{"bad escape", "# escape=x\nFROM scratch\n", "Dockerfile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.src), "")
			var dfErr *Error
			if !errors.As(err, &dfErr) {
				t.Fatalf("error %v (%T), want *Error", err, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestGlobalArgs(t *testing.T) {
	t.Parallel()
	df, err := Parse([]byte("ARG A=a\nARG B=${A}b\nARG C\nARG TARGETOS=mine\nFROM scratch\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		buildArgs map[string]string
		want      map[string]string
		absent    []string
	}{
		{"defaults", nil, map[string]string{"A": "a", "B": "ab", "TARGETARCH": "arm", "TARGETVARIANT": "v7", "TARGETPLATFORM": "linux/arm/v7", "BUILDPLATFORM": "linux/amd64", "TARGETOS": "mine", "TARGETSTAGE": "default"}, []string{"C"}},
		{"build args override", map[string]string{"A": "x", "C": "c", "TARGETARCH": "z"}, map[string]string{"A": "x", "B": "xb", "C": "c", "TARGETARCH": "z"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, err := df.GlobalArgs(tt.buildArgs, v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "")
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got, ok := env.Get(k); !ok || got != v {
					t.Errorf("%s = %q (%v), want %q", k, got, ok, v)
				}
			}
			for _, k := range tt.absent {
				if _, ok := env.Get(k); ok {
					t.Errorf("%s is set", k)
				}
			}
		})
	}
}

func TestStageArg(t *testing.T) {
	t.Parallel()
	df := &Dockerfile{}
	globals := NewEnv([]string{"G=global"})
	stage := NewEnv([]string{"S=stage"})
	str := func(s string) *string { return &s }
	tests := []struct {
		name      string
		arg       instructions.KeyValuePairOptional
		buildArgs map[string]string
		want      *string
	}{
		{"build arg wins", instructions.KeyValuePairOptional{Key: "G", Value: str("d")}, map[string]string{"G": "b"}, str("b")},
		{"default expanded", instructions.KeyValuePairOptional{Key: "X", Value: str("${S}-x")}, nil, str("stage-x")},
		{"global inherited", instructions.KeyValuePairOptional{Key: "G"}, nil, str("global")},
		{"default beats global", instructions.KeyValuePairOptional{Key: "G", Value: str("d")}, nil, str("d")},
		{"no value", instructions.KeyValuePairOptional{Key: "N"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := df.StageArg(tt.arg, tt.buildArgs, globals, stage)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", deref(got), deref(tt.want))
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestExpand(t *testing.T) {
	t.Parallel()
	src := "FROM scratch\nCOPY --chown=$U --from=$X $SRC ${DST:-/d}\nCMD echo $HOME\nCOPY <<EOF /f\n$SRC\nEOF\nCOPY <<'EOF' /g\n$SRC\nEOF\n"
	df, err := Parse([]byte(src), "")
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv([]string{"U=app", "SRC=a.txt", "X=no"})
	for _, c := range df.Stages[0].Commands {
		if err := df.Expand(c, env); err != nil {
			t.Fatal(err)
		}
	}
	cp := df.Stages[0].Commands[0].Command.(*instructions.CopyCommand)
	if cp.Chown != "app" || cp.From != "$X" || cp.SourcePaths[0] != "a.txt" || cp.DestPath != "/d" {
		t.Errorf("COPY expanded to %+v", cp)
	}
	cmd := df.Stages[0].Commands[1].Command.(*instructions.CmdCommand)
	if cmd.CmdLine[0] != "echo $HOME" {
		t.Errorf("CMD expanded: %q", cmd.CmdLine)
	}
	if d := df.Stages[0].Commands[2].Command.(*instructions.CopyCommand).SourceContents[0].Data; d != "a.txt\n" {
		t.Errorf("heredoc = %q", d)
	}
	if d := df.Stages[0].Commands[3].Command.(*instructions.CopyCommand).SourceContents[0].Data; d != "$SRC\n" {
		t.Errorf("quoted heredoc = %q", d)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	src := `ARG BASE=img
FROM $BASE AS a
FROM scratch AS b
COPY --from=a /x /x
FROM b AS c
FROM other AS d
COPY --from=1 /y /y
COPY --from=some/image:1 /z /z
FROM A AS e
`
	names := func(ss []*ResolvedStage) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.DisplayName())
		}
		return out
	}
	tests := []struct {
		name    string
		target  string
		needed  []string
		wantErr string
	}{
		{"last", "", []string{"e"}, ""},
		{"base stage and copy from", "c", []string{"a", "b", "c"}, ""},
		{"copy by index", "d", []string{"a", "b", "d"}, ""},
		{"by index", "0", []string{"a"}, ""},
		{"unknown", "zz", nil, `unknown target stage "zz" (stages: a, b, c, d, e)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			df, err := Parse([]byte(src), "")
			if err != nil {
				t.Fatal(err)
			}
			globals, err := df.GlobalArgs(nil, HostPlatform(), HostPlatform(), "")
			if err != nil {
				t.Fatal(err)
			}
			p, err := df.Resolve(globals, tt.target)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(p.Needed); !reflect.DeepEqual(got, tt.needed) {
				t.Errorf("needed %q, want %q", got, tt.needed)
			}
			if p.Stages[0].Base != "img" {
				t.Errorf("base of a = %q", p.Stages[0].Base)
			}
			// FROM A is an image: stage lookup is exact and names are lower case.
			if p.Stages[4].BaseStage != nil {
				t.Errorf("FROM A resolved to a stage")
			}
			if src, ok := p.Stages[3].CopyFrom[1]; !ok || src != nil {
				t.Errorf("COPY --from=some/image:1 resolved to a stage")
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, want string
	}{
		{"variable in from", "FROM scratch\nCOPY --from=$X /a /a\n", "Dockerfile:2: variable expansion is not supported for --from"},
		{"bad index", "FROM scratch\nCOPY --from=7 /a /a\n", "Dockerfile:2: invalid stage index 7"},
		{"blank base", "ARG X\nFROM ${X}\n", "Dockerfile:2: base name (${X}) should not be blank"},
		{"cycle", "FROM scratch AS a\nCOPY --from=b /a /a\nFROM scratch AS b\nCOPY --from=a /a /a\n", "Dockerfile:1: circular dependency detected on stage: a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			df, err := Parse([]byte(tt.src), "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = df.Resolve(&Env{}, "")
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestParseTrigger(t *testing.T) {
	t.Parallel()
	loc := Location{File: "Dockerfile", Line: 3, EndLine: 3}
	c, err := ParseTrigger("COPY a /b", loc)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Command.(*instructions.CopyCommand); !ok || !c.OnBuild || c.Location != loc {
		t.Errorf("trigger %+v", c)
	}
	if _, err := ParseTrigger("BOGUS x", loc); err == nil || !strings.HasPrefix(err.Error(), "Dockerfile:3: unknown instruction: BOGUS") {
		t.Errorf("error %v", err)
	}
}

func TestIsProxyArg(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]bool{"HTTP_PROXY": true, "https_proxy": true, "No_Proxy": true, "ALL_PROXY": true, "PROXY": false, "HTTP": false} {
		if got := IsProxyArg(key); got != want {
			t.Errorf("IsProxyArg(%q) = %v, want %v", key, got, want)
		}
	}
}
