package build

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/sandbox"
)

// testSecret is a secret value the tests look for everywhere.
const testSecret = "s3cr3t-Value-42"

// testSecrets are the secrets of every build of TestRunSecretMount.
func testSecrets() map[string][]byte {
	return map[string][]byte{
		"tok":   []byte(testSecret), // no newline: env= gives the value as is
		"multi": []byte("line-one-XYZ\nline-two-XYZ\n"),
	}
}

// imageBytes returns every byte of img that a registry would hold: the
// uncompressed layers, the config and the manifest.
func imageBytes(t *testing.T, img v1.Image) []byte {
	t.Helper()
	var all bytes.Buffer
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(&all, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	for _, f := range []func() ([]byte, error){img.RawConfigFile, img.RawManifest} {
		b, err := f()
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	return all.Bytes()
}

func TestRunSecretMount(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	tests := []struct {
		name       string
		dockerfile string
		want       map[string]string // path → flattened entry ("": absent)
		history    []string          // the new history entries, when set
		layer      []string          // the entries of the last layer, when set
		chroot     bool              // also in ModeChroot
	}{
		{name: "default target",
			dockerfile: "FROM busybox\nRUN --mount=type=secret,id=tok test \"$(cat /run/secrets/tok)\" = " + testSecret +
				" && stat -c '%a %u:%g' /run/secrets/tok > /mode\n",
			want:    map[string]string{"mode": "file 400 0:0 00644 0:0", "run": "", "run/secrets": ""},
			history: []string{"RUN /bin/sh -c test \"$(cat /run/secrets/tok)\" = " + testSecret + " && stat -c '%a %u:%g' /run/secrets/tok > /mode # buildkit!"},
			layer:   []string{"dev/", "mode", "proc/", "sys/"},
			chroot:  true},
		{name: "env",
			dockerfile: "FROM busybox\nENV TOKEN=config-value\nRUN --mount=type=secret,id=tok,env=TOKEN test \"$TOKEN\" = " + testSecret +
				" && test ! -e /run/secrets/tok && echo ok > /ok\nRUN echo \"$TOKEN\" > /after\n",
			want:   map[string]string{"ok": "file ok 00644 0:0", "after": "file config-value 00644 0:0", "run": ""},
			chroot: true},
		{name: "env and target",
			dockerfile: "FROM busybox\nRUN --mount=type=secret,id=tok,env=T,target=/k/t test \"$T\" = \"$(cat /k/t)\" && test -n \"$T\" && echo ok > /ok\n",
			want:       map[string]string{"ok": "file ok 00644 0:0", "k": ""},
			chroot:     true},
		{name: "custom target mode and owner",
			dockerfile: "FROM busybox\nRUN mkdir -p /opt/x\nRUN --mount=type=secret,id=tok,target=/opt/x/key,mode=0440,uid=1000,gid=50 stat -c '%a %u:%g' /opt/x/key > /mode && su app -s /bin/sh -c 'cat /opt/x/key' > /dev/null && echo read > /read\n",
			want:       map[string]string{"mode": "file 440 1000:50 00644 0:0", "read": "file read 00644 0:0", "opt/x": "dir 00755 0:0", "opt/x/key": ""},
			layer:      []string{"mode", "read"},
			chroot:     true},
		{name: "id from target",
			dockerfile: "FROM busybox\nRUN --mount=type=secret,target=/deep/er/tok cat /deep/er/tok | grep -q " + testSecret + " && echo ok > /ok\n",
			want:       map[string]string{"ok": "file ok 00644 0:0", "deep": ""},
			chroot:     true},
		{name: "relative target in the working directory",
			dockerfile: "FROM busybox\nWORKDIR /w\nRUN --mount=type=secret,id=tok,target=rel/tok test -f /w/rel/tok && echo ok > /ok\n",
			want:       map[string]string{"ok": "file ok 00644 0:0", "rel": "", "w/rel": "", "w": "dir 00755 0:0"},
			chroot:     true},
		{name: "missing optional",
			dockerfile: "FROM busybox\nRUN --mount=type=secret,id=nope test ! -e /run/secrets/nope && echo ok > /ok\n" +
				"RUN --mount=type=secret,id=nope,env=V env | grep -qx 'V=' && echo ok > /ok2\n",
			want:   map[string]string{"ok": "file ok 00644 0:0", "ok2": "file ok 00644 0:0", "run": ""},
			chroot: true},
		{name: "only the RUN that mounts it",
			dockerfile: "FROM busybox\nRUN --mount=type=secret,id=tok true\nRUN test ! -e /run/secrets/tok && echo gone > /gone\n",
			want:       map[string]string{"gone": "file gone 00644 0:0"},
			chroot:     true},
		{name: "existing target restored",
			dockerfile: "FROM busybox\nRUN mkdir -p /run/secrets && echo placeholder > /run/secrets/tok\nRUN --mount=type=secret,id=tok grep -q " + testSecret + " /run/secrets/tok && echo ok > /ok\n",
			want:       map[string]string{"ok": "file ok 00644 0:0", "run/secrets/tok": "file placeholder 00644 0:0"},
			layer:      []string{"ok"},
			chroot:     true},
		{name: "multi-line secret printed",
			dockerfile: "FROM busybox\nRUN --mount=type=secret,id=multi --mount=type=secret,id=tok cat /run/secrets/multi /run/secrets/tok && echo printed > /p\n",
			want:       map[string]string{"p": "file printed 00644 0:0"},
			chroot:     true},
	}
	for _, tt := range tests {
		modes := []sandbox.Mode{0}
		if tt.chroot {
			modes = append(modes, sandbox.ModeChroot)
		}
		for _, mode := range modes {
			name := tt.name
			var opts []Option
			if mode != 0 {
				name += " chroot"
				opts = append(opts, withSandboxMode(mode))
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				fx := fixture{dockerfile: tt.dockerfile, req: func(r *Request) { r.Secrets = testSecrets() }}
				res, cf, logs, err := runBuild(t, fx, opts...)
				if err != nil {
					t.Fatalf("build: %v\nlogs:\n%s", err, logs)
				}
				got := flatten(t, res.Image)
				for p, want := range tt.want {
					if got[p] != want {
						t.Errorf("%s = %q, want %q", p, got[p], want)
					}
				}
				if tt.history != nil {
					if h := newHistory(cf); !reflect.DeepEqual(h, tt.history) {
						t.Errorf("history:\n got %q\nwant %q", h, tt.history)
					}
				}
				if tt.layer != nil {
					if l := lastLayer(t, res.Image); !reflect.DeepEqual(l, tt.layer) {
						t.Errorf("last layer: got %q, want %q", l, tt.layer)
					}
				}
				all := imageBytes(t, res.Image)
				for _, v := range []string{testSecret, "line-one-XYZ", "line-two-XYZ"} {
					if bytes.Contains(all, []byte(v)) && !strings.Contains(tt.dockerfile, v) {
						t.Errorf("secret %q is in the image", v)
					}
					if strings.Contains(logs, v) && !strings.Contains(tt.dockerfile, v) {
						t.Errorf("secret %q is in the logs:\n%s", v, logs)
					}
				}
			})
		}
	}
}

func TestRunSecretMountErrors(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	tests := []struct {
		name       string
		dockerfile string
		want       string
	}{
		{"missing required", "FROM busybox\n\nRUN --mount=type=secret,id=nope,required=true true\n",
			"Dockerfile:3: secret nope not provided (--secret id=nope,...)"},
		{"missing required env", "FROM busybox\nRUN --mount=type=secret,id=nope,env=X,required true\n",
			"Dockerfile:2: secret nope not provided (--secret id=nope,...)"},
		{"secret in failing output", "FROM busybox\nRUN --mount=type=secret,id=tok cat /run/secrets/tok; exit 4\n",
			"Dockerfile:2: RUN exited with 4 (last output line: ***)"},
		{"write to the secret", "FROM busybox\nRUN --mount=type=secret,id=tok echo x > /run/secrets/tok\n",
			"Dockerfile:2: RUN exited with 1 (last output line: /bin/sh: can't create /run/secrets/tok: Read-only file system)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := fixture{dockerfile: tt.dockerfile, req: func(r *Request) { r.Secrets = testSecrets() }}
			_, _, logs, err := runBuild(t, fx)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if strings.Contains(logs, testSecret) {
				t.Errorf("secret in the logs:\n%s", logs)
			}
		})
	}
}

func TestWithEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		env, extra []string
		want       []string
	}{
		{"none", []string{"A=1"}, nil, []string{"A=1"}},
		{"added", []string{"A=1"}, []string{"S=x"}, []string{"A=1", "S=x"}},
		{"replaced", []string{"S=old", "A=1"}, []string{"S=new"}, []string{"A=1", "S=new"}},
		{"empty value", []string{"A=1"}, []string{"S="}, []string{"A=1", "S="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := withEnv(tt.env, tt.extra); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSecretParts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		want  []string
	}{
		{"one line", "tok\n", []string{"tok"}},
		{"lines", "a1\n b2 \n\n", []string{"a1\n b2", "a1", "b2"}},
		{"blank", " \n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := secretParts([]byte(tt.value)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
