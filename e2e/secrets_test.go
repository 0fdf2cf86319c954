package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// secretsDockerfile uses a file secret (default target, custom target with
// owner and mode) and an env secret, proves their values with hashes (the
// Dockerfile must not hold them), and prints one to the RUN output.
const secretsDockerfile = `FROM {{REG}}/base/busybox:1
RUN --mount=type=secret,id=tok test "$(sha256sum /run/secrets/tok | cut -d' ' -f1)" = {{TOK_SUM}} && echo file-ok > /file-ok
RUN --mount=type=secret,id=env1,env=MY_SECRET test "$(printf %s "$MY_SECRET" | sha256sum | cut -d' ' -f1)" = {{ENV_SUM}} && echo env-ok > /env-ok
RUN --mount=type=secret,id=tok,target=/etc/app/key,mode=0440,uid=1000,gid=50 stat -c '%a %u:%g' /etc/app/key > /key-mode
RUN --mount=type=secret,id=tok --mount=type=secret,id=env1,env=MY_SECRET cat /run/secrets/tok && echo "$MY_SECRET" && test ! -e /run/secrets/env1
RUN test ! -e /run/secrets && test -z "$MY_SECRET" && echo gone > /gone
CMD ["cat", "/file-ok", "/env-ok", "/key-mode", "/gone"]
`

// secretValues returns a fresh file secret (with a trailing newline, as
// files have) and env secret, unlike any other bytes of the test.
func secretValues(t *testing.T) (file, env string) {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	file = "tok-SECRET-" + hex.EncodeToString(b[:6]) + "\n"
	env = "env-SECRET-" + hex.EncodeToString(b[6:])
	return file, env
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// secretsCase writes the context and the secret file and returns the
// context dir, the Dockerfile and the secret file.
func (e *env) secretsCase(t *testing.T, fileSecret, envSecret string) (dir, dockerfile, secretFile string) {
	t.Helper()
	dir = t.TempDir()
	df := strings.NewReplacer("{{TOK_SUM}}", sha256Hex(fileSecret), "{{ENV_SUM}}", sha256Hex(envSecret)).Replace(e.expand(secretsDockerfile))
	writeTree(t, dir, map[string]file{"Dockerfile": txt(df), "app.txt": txt("app\n")})
	secretFile = filepath.Join(t.TempDir(), "tok.txt")
	if err := os.WriteFile(secretFile, []byte(fileSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, "Dockerfile"), secretFile
}

// TestSecretsLeak builds with a file and an env secret, pushes, and looks
// for the secret bytes everywhere ship wrote or pushed: every blob of the
// pushed image (compressed and uncompressed), the OCI layout, the tarball,
// stdout, stderr, the GitHub output and summary files and the cache dir.
func TestSecretsLeak(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	fileSecret, envSecret := secretValues(t)
	secrets := []string{strings.TrimSpace(fileSecret), envSecret}
	dir, dockerfile, secretFile := e.secretsCase(t, fileSecret, envSecret)

	work := t.TempDir()
	tag := e.reg.Ref("secrets/leak:1")
	t.Cleanup(func() { e.docker.RemoveImages(context.Background(), tag) })
	ghOut, ghSum := filepath.Join(work, "github_output"), filepath.Join(work, "step_summary")
	for _, f := range []string{ghOut, ghSum} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cacheDir, layoutDir, tarPath := filepath.Join(work, "cache"), filepath.Join(work, "layout"), filepath.Join(work, "image.tar")
	res := runShipInTemp(t, ctx, work,
		[]string{"GITHUB_ACTIONS=true", "GITHUB_OUTPUT=" + ghOut, "GITHUB_STEP_SUMMARY=" + ghSum, "MY_SECRET=" + envSecret},
		"--context", dir, "--file", dockerfile, "--tag", tag, "--push", "--insecure-registry", e.reg.Host,
		"--cache-dir", cacheDir, "--output", layoutDir, "--output-tar", tarPath,
		"--secret", "id=tok,src="+secretFile, "--secret", "id=env1,env=MY_SECRET")
	if res.Code != 0 {
		t.Fatalf("ship failed: %s", res)
	}

	// The image is right: the RUNs saw the values, nothing of the mounts
	// stayed.
	tr := e.imageTree(t, tag)
	for p, w := range map[string]want{
		"/file-ok":  wfile("file-ok\n", 0o644),
		"/env-ok":   wfile("env-ok\n", 0o644),
		"/key-mode": wfile("440 1000:50\n", 0o644),
		"/gone":     wfile("gone\n", 0o644),
	} {
		if got, ok := tr[p]; !ok || got != w.entry() {
			t.Errorf("%s = %v, want %v", p, got, w.entry())
		}
	}
	for _, p := range []string{"/run", "/run/secrets", "/etc/app", "/etc/app/key"} {
		if _, ok := tr[p]; ok {
			t.Errorf("mount path %s is in the image", p)
		}
	}
	if err := e.docker.Pull(ctx, tag); err != nil {
		t.Fatal(err)
	}
	if out, err := e.docker.Run(ctx, tag); err != nil || out != "file-ok\nenv-ok\n440 1000:50\ngone\n" {
		t.Errorf("docker run: %q, %v", out, err)
	}

	// GitHub masks each value.
	for _, s := range secrets {
		if !strings.Contains(res.Stdout, "::add-mask::"+s+"\n") {
			t.Errorf("secret not masked with add-mask:\n%s", res.Stdout)
		}
	}

	var places []place
	places = append(places, place{"stdout", []byte(stripMasks(res.Stdout, secrets))}, place{"stderr", []byte(res.Stderr)})
	places = append(places, registryBlobs(t, tag)...)
	for _, d := range []string{layoutDir, cacheDir, ghOut, ghSum, tarPath} {
		places = append(places, filesUnder(t, d)...)
	}
	if len(places) < 10 {
		t.Fatalf("only %d places searched", len(places))
	}
	for _, p := range places {
		for _, s := range secrets {
			if bytes.Contains(p.data, []byte(s)) {
				t.Errorf("secret %q found in %s", s, p.name)
			}
		}
	}
}

// TestSecretsErrors checks that secret problems are reported without the
// values: a bad or missing source is a usage error (exit 2) naming the id;
// a required secret that is not given fails the build (exit 3) at its line;
// a failing RUN that printed a secret has it redacted.
func TestSecretsErrors(t *testing.T) {
	t.Parallel()
	reg := newEnv(t, false)
	fileSecret, envSecret := secretValues(t)
	_, _, secretFile := reg.secretsCase(t, fileSecret, envSecret)
	tests := []struct {
		name       string
		dockerfile string
		args       []string
		env        []string
		wantCode   int
		wantErr    string // the last line of stderr
	}{
		{name: "missing file", dockerfile: "FROM {{REG}}/base/busybox:1\nRUN true\n",
			args: []string{"--secret", "id=tok,src=/nonexistent/tok"}, wantCode: 2,
			wantErr: "ship: secret tok: file /nonexistent/tok does not exist"},
		{name: "missing variable", dockerfile: "FROM {{REG}}/base/busybox:1\nRUN true\n",
			args: []string{"--secret", "id=tok,env=NOT_SET_HERE"}, wantCode: 2,
			wantErr: "ship: secret tok: environment variable NOT_SET_HERE is not set"},
		{name: "bad syntax", dockerfile: "FROM {{REG}}/base/busybox:1\nRUN true\n",
			args: []string{"--secret", "src=" + secretFile}, wantCode: 2,
			wantErr: "ship: invalid secret (item 1 of secrets): missing id"},
		{name: "a value instead of a source", dockerfile: "FROM {{REG}}/base/busybox:1\nRUN true\n",
			args: []string{"--secret", "TOKEN=" + envSecret}, wantCode: 2,
			wantErr: `ship: invalid secret (item 1 of secrets): unexpected key "TOKEN" (want id, src, env or type)`},
		{name: "required secret not given", dockerfile: "FROM {{REG}}/base/busybox:1\nRUN true\nRUN --mount=type=secret,id=nope,required cat /run/secrets/nope\n",
			args: []string{"--secret", "id=tok,src=" + secretFile}, wantCode: 3,
			wantErr: "ship: Dockerfile:3: secret nope not provided (--secret id=nope,...)"},
		{name: "printed by a failing RUN", dockerfile: "FROM {{REG}}/base/busybox:1\nRUN --mount=type=secret,id=tok --mount=type=secret,id=e,env=E cat /run/secrets/tok; echo \"$E\"; exit 5\n",
			args: []string{"--secret", "id=tok,src=" + secretFile, "--secret", "id=e,env=MY_SECRET"}, env: []string{"MY_SECRET=" + envSecret}, wantCode: 3,
			wantErr: "ship: Dockerfile:2: RUN exited with 5 (last output line: ***)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			dir := t.TempDir()
			writeTree(t, dir, map[string]file{"Dockerfile": txt(reg.expand(tt.dockerfile))})
			work := t.TempDir()
			args := append([]string{"--context", dir, "--insecure-registry", reg.reg.Host, "--cache-dir", filepath.Join(work, "cache"),
				"--output", filepath.Join(work, "out")}, tt.args...)
			res := runShipInTemp(t, ctx, work, append([]string{"GITHUB_ACTIONS=true"}, tt.env...), args...)
			if res.Code != tt.wantCode {
				t.Fatalf("exit %d, want %d: %s", res.Code, tt.wantCode, res)
			}
			if got := res.errorLine(); got != tt.wantErr {
				t.Errorf("error line %q, want %q", got, tt.wantErr)
			}
			for _, s := range []string{strings.TrimSpace(fileSecret), envSecret} {
				if strings.Contains(stripMasks(res.Stdout, []string{s}), s) || strings.Contains(res.Stderr, s) {
					t.Errorf("secret %q in the output: %s", s, res)
				}
			}
			if tt.name == "printed by a failing RUN" && !strings.Contains(res.Stderr, "***") {
				t.Errorf("the RUN output is not logged redacted: %s", res.Stderr)
			}
		})
	}
}

// TestSecretsDifferentialCurrentBuildKit builds secretsDockerfile with a
// current BuildKit daemon and with ship: config, history, layers and file
// system must be equal (BuildKit leaves no mount point in a layer either).
func TestSecretsDifferentialCurrentBuildKit(t *testing.T) {
	t.Parallel()
	currentBuildKit(t) // skips or fails without a daemon
	addr, bin := os.Getenv(buildkitAddrEnv), os.Getenv(buildctlEnv)
	if bin == "" {
		bin = "buildctl"
	}
	e := newEnv(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	fileSecret, envSecret := secretValues(t)
	dir, dockerfile, secretFile := e.secretsCase(t, fileSecret, envSecret)
	refTag, candTag := e.reg.Ref("ref/secrets:1"), e.reg.Ref("ship/secrets:1")
	t.Cleanup(func() { e.docker.RemoveImages(context.Background(), refTag, candTag) })

	cmd := exec.CommandContext(ctx, bin, "--addr", addr, "build", "--progress=plain", "--frontend", "dockerfile.v0",
		"--local", "context="+dir, "--local", "dockerfile="+filepath.Dir(dockerfile),
		"--secret", "id=tok,src="+secretFile, "--secret", "id=env1,env=MY_SECRET",
		"--output", "type=image,name="+refTag+",push=true,registry.insecure=true")
	cmd.Env = append(os.Environ(), "MY_SECRET="+envSecret)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buildctl build: %v\n%s", err, out)
	}
	work := t.TempDir()
	res := runShipInTemp(t, ctx, work, []string{"MY_SECRET=" + envSecret},
		"--context", dir, "--file", dockerfile, "--tag", candTag, "--push", "--insecure-registry", e.reg.Host,
		"--cache-dir", filepath.Join(work, "cache"), "--secret", "id=tok,src="+secretFile, "--secret", "id=env1,env=MY_SECRET")
	if res.Code != 0 {
		t.Fatalf("ship failed: %s", res)
	}
	report(t, "current BuildKit and ship", e.compare(ctx, t, refTag, candTag))
}

// place is something ship wrote or pushed, searched for secrets.
type place struct {
	name string
	data []byte
}

// stripMasks removes GitHub's add-mask commands of secrets from stdout:
// the only place a secret may appear.
func stripMasks(stdout string, secrets []string) string {
	for _, s := range secrets {
		stdout = strings.ReplaceAll(stdout, "::add-mask::"+s+"\n", "")
	}
	return stdout
}

// registryBlobs returns the manifest, the config and every layer (as
// stored and uncompressed) of the image ref in the registry.
func registryBlobs(t *testing.T, ref string) []place {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("fetching %s: %v", ref, err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	config, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	out := []place{{"registry manifest", manifest}, {"registry config", config}}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		for _, f := range []func() (io.ReadCloser, error){l.Compressed, l.Uncompressed} {
			rc, err := f()
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, place{fmt.Sprintf("registry layer %d", i), data})
		}
	}
	return out
}

// filesUnder returns every regular file under root (or root itself), each
// also gunzipped when it is gzip, and the members of tar files.
func filesUnder(t *testing.T, root string) []place {
	t.Helper()
	var out []place
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, unpack(p, data)...)
		return nil
	})
	if err != nil {
		t.Fatalf("reading %s: %v", root, err)
	}
	return out
}

// unpack returns data, its gunzipped form and its tar members (expanded
// in turn), named after what.
func unpack(what string, data []byte) []place {
	out := []place{{what, data}}
	if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
		if plain, err := io.ReadAll(zr); err == nil {
			out = append(out, unpack(what+" (gunzipped)", plain)...)
		}
	}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		member, err := io.ReadAll(tr)
		if err != nil {
			break
		}
		// Members of a layer tar: searched as part of data already; only
		// recurse into compressed members (the tarball's layers).
		if bytes.HasPrefix(member, []byte{0x1f, 0x8b}) {
			out = append(out, unpack(what+":"+h.Name, member)...)
		}
	}
	return out
}
