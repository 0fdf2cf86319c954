package action

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/intesys/ship-action/internal/build"
)

func TestParseSecretSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    secretSpec
		wantErr string
	}{
		{name: "file", in: "id=tok,src=/run/tok", want: secretSpec{id: "tok", file: "/run/tok"}},
		{name: "source synonym and type", in: "type=file,id=tok,source=a.txt", want: secretSpec{id: "tok", file: "a.txt"}},
		{name: "env", in: "id=tok,env=MY_TOKEN", want: secretSpec{id: "tok", env: "MY_TOKEN"}},
		{name: "type env takes src as the variable", in: "type=env,id=tok,src=MY_TOKEN", want: secretSpec{id: "tok", env: "MY_TOKEN"}},
		{name: "bare id", in: "id=TOKEN", want: secretSpec{id: "TOKEN"}},
		{name: "quoted csv field", in: `id=tok,"src=/a,b"`, want: secretSpec{id: "tok", file: "/a,b"}},
		{name: "upper-case keys", in: "ID=tok,SRC=f", want: secretSpec{id: "tok", file: "f"}},
		{name: "missing id", in: "src=/run/tok", wantErr: "missing id"},
		{name: "not key=value", in: "id=tok,/run/tok", wantErr: "field 2 is not key=value (want id=ID,src=FILE or id=ID,env=VAR)"},
		{name: "unknown key", in: "id=tok,path=x", wantErr: `unexpected key "path" (want id, src, env or type)`},
		{name: "a value instead of a source", in: "TOKEN=ghp_v4lue", wantErr: `unexpected key "TOKEN" (want id, src, env or type)`},
		{name: "unknown type", in: "type=ssh,id=tok", wantErr: "unsupported type (want type=file or type=env)"},
		{name: "src and env", in: "id=tok,src=f,env=E", wantErr: "set src or env, not both"},
		{name: "type file with env", in: "type=file,id=tok,env=E", wantErr: "type=file takes src, not env"},
		{name: "bad csv", in: `id="tok`, wantErr: "want id=ID,src=FILE or id=ID,env=VAR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseSecretSpec(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokFile := write("tok", []byte("file-secret-value\n"))
	big := write("big", bytes.Repeat([]byte("x"), maxSecretSize+1))
	env := envOf(map[string]string{"MY_SECRET": "env-secret-value", "BARE": "bare-env-value", "EMPTY": ""})
	tests := []struct {
		name    string
		items   []string
		want    map[string][]byte
		wantErr string
	}{
		{name: "none", items: nil, want: nil},
		{name: "file and env", items: []string{"id=tok,src=" + tokFile, "id=e,env=MY_SECRET"},
			want: map[string][]byte{"tok": []byte("file-secret-value\n"), "e": []byte("env-secret-value")}},
		{name: "bare id from env", items: []string{"id=BARE"}, want: map[string][]byte{"BARE": []byte("bare-env-value")}},
		{name: "bare id from file", items: []string{"id=" + tokFile}, want: map[string][]byte{tokFile: []byte("file-secret-value\n")}},
		{name: "empty variable is a value", items: []string{"id=e,env=EMPTY"}, want: map[string][]byte{"e": {}}},
		{name: "missing file", items: []string{"id=tok,src=" + filepath.Join(dir, "nope")},
			wantErr: "secret tok: file " + filepath.Join(dir, "nope") + " does not exist"},
		{name: "directory", items: []string{"id=tok,src=" + dir}, wantErr: "secret tok: " + dir + " is a directory, not a file"},
		{name: "missing variable", items: []string{"id=tok,env=NOT_SET"}, wantErr: "secret tok: environment variable NOT_SET is not set"},
		{name: "too big", items: []string{"id=big,src=" + big}, wantErr: fmt.Sprintf("secret big is too big (more than %d bytes)", maxSecretSize)},
		{name: "twice", items: []string{"id=a,env=MY_SECRET", "id=a,src=" + tokFile}, wantErr: "secret a is given twice"},
		{name: "syntax", items: []string{"id=a,env=MY_SECRET", "src=x"}, wantErr: "invalid secret (item 2 of secrets): missing id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := readSecrets(tt.items, env)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if ExitCode(err) != CodeUsage {
					t.Errorf("exit code %d, want %d", ExitCode(err), CodeUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSecretsInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    []string
		wantErr string
	}{
		{name: "flags keep their commas", args: []string{"--secret", "id=a,src=f", "--secret=id=b,env=B"},
			want: []string{"id=a,src=f", "id=b,env=B"}},
		{name: "input lines", env: map[string]string{"INPUT_SECRETS": "id=a,src=f\n\n id=b,env=B \n"},
			want: []string{"id=a,src=f", "id=b,env=B"}},
		{name: "ship env", env: map[string]string{"SHIP_SECRETS": "id=a,src=f"}, want: []string{"id=a,src=f"}},
		{name: "plural flag splits lines", args: []string{"--secrets", "id=a,src=f\nid=b,src=g"},
			want: []string{"id=a,src=f", "id=b,src=g"}},
		{name: "invalid", args: []string{"--secret", "src=f"}, wantErr: "invalid secret (item 1 of secrets): missing id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(append([]string{"--context", dir}, tt.args...), envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || ExitCode(err) != CodeUsage {
					t.Fatalf("error %v (code %d), want %q (code %d)", err, ExitCode(err), tt.wantErr, CodeUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Secrets, tt.want) {
				t.Errorf("secrets %q, want %q", c.Secrets, tt.want)
			}
		})
	}
}

// TestRunSecrets checks that Run hands the secret values to the build and
// keeps them out of everything it writes.
func TestRunSecrets(t *testing.T) {
	t.Parallel()
	const (
		fileSecret = "file-S3cret-value"
		line1      = "multi-line-one-Q"
		line2      = "multi-line-two-Q"
		envSecret  = "env-S3cret-value"
	)
	tests := []struct {
		name     string
		github   bool
		buildErr bool
		secrets  []string // extra items
		wantCode int
		wantErr  string
	}{
		{name: "github", github: true},
		{name: "local"},
		{name: "failed build quoting the secrets", github: true, buildErr: true, wantCode: CodeBuild,
			wantErr: "Dockerfile:2: RUN exited with 1 (last output line: *** *** ***)"},
		{name: "missing file", secrets: []string{"id=gone,src=/nonexistent/secret"}, wantCode: CodeUsage,
			wantErr: "secret gone: file /nonexistent/secret does not exist"},
		{name: "missing variable", github: true, secrets: []string{"id=gone,env=UNSET_VAR"}, wantCode: CodeUsage,
			wantErr: "secret gone: environment variable UNSET_VAR is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t)
			f := filepath.Join(b.dir, "secret.txt")
			if err := os.WriteFile(f, []byte(fileSecret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			m := filepath.Join(b.dir, "multi.pem")
			if err := os.WriteFile(m, []byte(line1+"\n"+line2+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			b.env["MY_SECRET"] = envSecret
			if tt.github {
				b.github()
			}
			b.cfg.Secrets = append([]string{"id=tok,src=" + f, "id=multi,src=" + m, "id=env1,env=MY_SECRET"}, tt.secrets...)
			img, err := random.Image(128, 1)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string][]byte
			builder := func(ctx context.Context, req build.Request, _ ...build.Option) (*build.Result, error) {
				got = req.Secrets
				res, err := fakeBuild(img, nil)(ctx, req)
				if tt.buildErr {
					return nil, fmt.Errorf("Dockerfile:2: RUN exited with 1 (last output line: %s %s %s)", fileSecret, line2, envSecret)
				}
				return res, err
			}
			opts := []Option{
				WithEnv(envOf(b.env)),
				WithStdout(&b.stdout),
				WithLogger(slog.New(slog.NewTextHandler(&b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
				withWorkDir(filepath.Join(b.dir, "work")),
				withTempDir(b.tempBase),
				withBuilder(builder),
				withClient(b.client),
			}
			err = Run(context.Background(), b.cfg, opts...)
			if ExitCode(err) != tt.wantCode {
				t.Fatalf("exit code %d (%v), want %d", ExitCode(err), err, tt.wantCode)
			}
			if tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
			if tt.wantCode == CodeUsage {
				if got != nil {
					t.Error("the build ran despite a missing secret")
				}
			} else {
				want := map[string][]byte{"tok": []byte(fileSecret + "\n"), "multi": []byte(line1 + "\n" + line2 + "\n"), "env1": []byte(envSecret)}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("build got secrets %q, want %q", got, want)
				}
			}
			stdout := b.stdout.String()
			for _, s := range []string{fileSecret, line1, line2, envSecret} {
				masked := strings.Contains(stdout, "::add-mask::"+s+"\n")
				if tt.github && tt.wantCode != CodeUsage && !masked {
					t.Errorf("%s not masked on GitHub:\n%s", s, stdout)
				}
				if !tt.github && masked {
					t.Errorf("%s masked outside GitHub", s)
				}
				rest := strings.ReplaceAll(stdout, "::add-mask::"+s+"\n", "")
				if strings.Contains(rest, s) || strings.Contains(b.logs.String(), s) || (err != nil && strings.Contains(err.Error(), s)) {
					t.Errorf("secret %s leaked to stdout, logs or error", s)
				}
				for _, f := range []string{b.githubOut, b.sum} {
					if data, err := os.ReadFile(f); err == nil && strings.Contains(string(data), s) {
						t.Errorf("secret %s leaked to %s", s, f)
					}
				}
			}
			if strings.Contains(stdout, "::add-mask::"+line1+"\n"+line2) {
				t.Error("a multi-line value was given to add-mask as one command")
			}
			if left, _ := os.ReadDir(b.tempBase); len(left) != 0 {
				t.Errorf("temp files left: %v", left)
			}
		})
	}
}
