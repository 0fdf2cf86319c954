package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// requireAuth wraps a registry: requests without credentials get a Basic
// challenge (unless anonymous is allowed); credentials other than
// user/password are rejected with a body that echoes the password, as a
// careless registry might.
func requireAuth(user, password string, anonymous bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok && anonymous {
				next.ServeHTTP(w, r)
				return
			}
			if !ok || (user != "" && (u != user || p != password)) {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials for %s with password %s"}]}`, u, p)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// writeDockerConfig writes config.json with auths (registry key → user,
// password) into a new directory and returns it.
func writeDockerConfig(t *testing.T, auths map[string][2]string, extra map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	a := map[string]any{}
	for k, up := range auths {
		a[k] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(up[0] + ":" + up[1]))}
	}
	cfg := map[string]any{"auths": a}
	for k, v := range extra {
		cfg[k] = v
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

type cred struct{ registry, user, password string }

func TestCredentialPrecedence(t *testing.T) {
	t.Parallel()
	cfgAll := map[string][2]string{
		"ghcr.io":                      {"cfg-user", "cfg-pass"},
		"registry.example":             {"cfg-user", "cfg-pass"},
		"registry.gitlab.example:5050": {"cfg-user", "cfg-pass"},
		"https://index.docker.io/v1/":  {"hub-user", "hub-pass"},
		"other.example":                {"cfg-user", "cfg-pass"},
	}
	gitlabEnv := map[string]string{
		"CI_REGISTRY": "registry.gitlab.example:5050", "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": "gl-pass",
	}
	tests := []struct {
		name       string
		tag        string
		explicit   []cred
		ghToken    string
		env        map[string]string
		cfg        map[string][2]string
		pushTags   bool // also pass the tag with WithPushTags
		wantSource string
		wantUser   string
		wantPass   string
	}{
		{name: "explicit beats everything", tag: "ghcr.io/o/app:1", explicit: []cred{{"ghcr.io", "eu", "ep"}}, ghToken: "ght", env: map[string]string{"GITHUB_ACTOR": "actor"}, cfg: cfgAll,
			wantSource: SourceExplicit, wantUser: "eu", wantPass: "ep"},
		{name: "explicit without registry applies to the pushed registry", tag: "ghcr.io/o/app:1", explicit: []cred{{"", "eu", "ep"}}, ghToken: "ght", cfg: cfgAll, pushTags: true,
			wantSource: SourceExplicit, wantUser: "eu", wantPass: "ep"},
		{name: "explicit docker.io matches index.docker.io", tag: "docker.io/library/app:1", explicit: []cred{{"https://docker.io", "eu", "ep"}}, cfg: cfgAll,
			wantSource: SourceExplicit, wantUser: "eu", wantPass: "ep"},
		{name: "explicit for another registry is ignored", tag: "ghcr.io/o/app:1", explicit: []cred{{"other.example", "eu", "ep"}}, ghToken: "ght", env: map[string]string{"GITHUB_ACTOR": "actor"},
			wantSource: SourceGitHubToken, wantUser: "actor", wantPass: "ght"},
		{name: "github token beats docker config", tag: "ghcr.io/o/app:1", ghToken: "ght", cfg: cfgAll,
			wantSource: SourceGitHubToken, wantUser: "x-access-token", wantPass: "ght"},
		{name: "github token only for ghcr.io", tag: "registry.example/app:1", ghToken: "ght", cfg: cfgAll,
			wantSource: SourceDockerConfig, wantUser: "cfg-user", wantPass: "cfg-pass"},
		{name: "gitlab beats docker config", tag: "registry.gitlab.example:5050/g/app:1", ghToken: "ght", env: gitlabEnv, cfg: cfgAll,
			wantSource: SourceGitLab, wantUser: "gitlab-ci-token", wantPass: "gl-pass"},
		{name: "gitlab only for its host", tag: "other.example/app:1", env: gitlabEnv, cfg: cfgAll,
			wantSource: SourceDockerConfig, wantUser: "cfg-user", wantPass: "cfg-pass"},
		{name: "gitlab host on another port", tag: "registry.gitlab.example/app:1", env: gitlabEnv,
			wantSource: SourceAnonymous},
		{name: "docker config for docker.io", tag: "docker.io/library/app:1", cfg: cfgAll,
			wantSource: SourceDockerConfig, wantUser: "hub-user", wantPass: "hub-pass"},
		{name: "anonymous", tag: "unknown.example/app:1", ghToken: "ght", env: gitlabEnv, cfg: cfgAll,
			wantSource: SourceAnonymous},
		{name: "empty explicit inputs add nothing", tag: "ghcr.io/o/app:1", explicit: []cred{{"", "", ""}}, ghToken: "ght", pushTags: true,
			wantSource: SourceGitHubToken, wantUser: "x-access-token", wantPass: "ght"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			anonymous := tc.wantSource == SourceAnonymous
			host, rec := memRegistry(t, requireAuth(tc.wantUser, tc.wantPass, anonymous))
			opts := []Option{
				WithEnv(envMap(tc.env)),
				WithGitHubToken(tc.ghToken),
				WithTransport(&rewriteTransport{host: host}),
				WithDockerConfigDir(writeDockerConfig(t, tc.cfg, nil)),
				withBackoff(fastBackoff),
			}
			for _, e := range tc.explicit {
				opts = append(opts, WithCredentials(e.registry, e.user, e.password))
			}
			if tc.pushTags {
				opts = append(opts, WithPushTags(tc.tag))
			}
			c, err := New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			reg := strings.SplitN(tc.tag, "/", 2)[0]
			if got := c.CredentialSource(reg); got != tc.wantSource {
				t.Errorf("CredentialSource(%s) = %q, want %q", reg, got, tc.wantSource)
			}
			if _, err := c.Push(context.Background(), randomImage(t, 1), []string{tc.tag}); err != nil {
				t.Fatalf("Push: %v", err)
			}
			withCreds := 0
			for _, q := range rec.all() {
				if q.path == "/v2/" && q.user == "" {
					continue // the ping that gets the challenge
				}
				withCreds++
				if q.user != tc.wantUser || q.password != tc.wantPass {
					t.Fatalf("%s %s sent user %q password %q, want %q %q", q.method, q.path, q.user, q.password, tc.wantUser, tc.wantPass)
				}
			}
			if withCreds == 0 {
				t.Fatal("no request after the ping")
			}
		})
	}
}

func TestAuthFailureMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		tag        string
		opts       func(t *testing.T) []Option
		pull       bool
		secret     string
		wantSource string
		wantHint   string
	}{
		{name: "explicit", tag: "registry.example/app:1", secret: "explicit-s3cret",
			opts: func(*testing.T) []Option {
				return []Option{WithCredentials("registry.example", "me", "explicit-s3cret")}
			},
			wantSource: SourceExplicit, wantHint: "registry-username and registry-password inputs"},
		{name: "github token", tag: "ghcr.io/o/app:1", secret: "ghs_t0ken",
			opts:       func(*testing.T) []Option { return []Option{WithGitHubToken("ghs_t0ken")} },
			wantSource: SourceGitHubToken, wantHint: "packages: write"},
		{name: "gitlab", tag: "registry.gitlab.example/g/app:1", secret: "glcbt-pass",
			opts: func(*testing.T) []Option {
				return []Option{WithEnv(envMap(map[string]string{"CI_REGISTRY": "registry.gitlab.example", "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": "glcbt-pass"}))}
			},
			wantSource: SourceGitLab, wantHint: "job token"},
		{name: "docker config", tag: "registry.example/app:1", secret: "cfg-s3cret",
			opts: func(t *testing.T) []Option {
				return []Option{WithDockerConfigDir(writeDockerConfig(t, map[string][2]string{"registry.example": {"me", "cfg-s3cret"}}, nil))}
			},
			wantSource: SourceDockerConfig, wantHint: "docker login registry.example"},
		{name: "docker config on pull", tag: "registry.example/app:1", pull: true, secret: "cfg-s3cret",
			opts: func(t *testing.T) []Option {
				return []Option{WithDockerConfigDir(writeDockerConfig(t, map[string][2]string{"registry.example": {"me", "cfg-s3cret"}}, nil))}
			},
			wantSource: SourceDockerConfig, wantHint: "docker login registry.example"},
		{name: "anonymous", tag: "registry.example/app:1",
			opts:       func(*testing.T) []Option { return nil },
			wantSource: SourceAnonymous, wantHint: "no credentials were found for registry.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host, rec := memRegistry(t, requireAuth("right", "right", false))
			var logs bytes.Buffer
			var mu sync.Mutex
			masked := map[string]int{}
			opts := append([]Option{
				WithEnv(envMap(nil)),
				WithDockerConfigDir(t.TempDir()),
				WithTransport(&rewriteTransport{host: host}),
				WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
				WithMasker(func(s string) { mu.Lock(); masked[s]++; mu.Unlock() }),
				withBackoff(fastBackoff),
			}, tc.opts(t)...)
			c, err := New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if tc.pull {
					_, err = c.Image(context.Background(), tc.tag, v1.Platform{})
				} else {
					_, err = c.Push(context.Background(), randomImage(t, 1), []string{tc.tag})
				}
				if err == nil {
					t.Fatal("no error with wrong credentials")
				}
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			var ae *AuthError
			if !errors.As(err, &ae) {
				t.Fatalf("error %q (%T) is not an *AuthError", msg, err)
			}
			if ae.Source != tc.wantSource || ae.StatusCode != http.StatusUnauthorized || ae.Push == tc.pull {
				t.Errorf("AuthError{Source: %q, StatusCode: %d, Push: %v}, want %q, 401, push %v", ae.Source, ae.StatusCode, ae.Push, tc.wantSource, !tc.pull)
			}
			reg := strings.SplitN(tc.tag, "/", 2)[0]
			for _, want := range []string{"registry " + reg, "credential source: " + tc.wantSource, tc.wantHint} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if !tc.pull {
				var pe *PushError
				if !errors.As(err, &pe) || len(pe.NotWritten) != 1 {
					t.Errorf("want a *PushError with the tag not written, got %v", err)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error has several lines: %q", msg)
			}
			if tc.secret == "" {
				return
			}
			// The server did receive the secret (so it was there to leak)...
			if rec.count(func(q request) bool { return q.password == tc.secret }) == 0 {
				t.Fatalf("the registry never saw the secret: the test proves nothing")
			}
			// ...and echoed it, but no error text or log carries it.
			for e := err; e != nil; e = errors.Unwrap(e) {
				if strings.Contains(e.Error(), tc.secret) {
					t.Errorf("error chain leaks the secret: %q", e.Error())
				}
			}
			if strings.Contains(logs.String(), tc.secret) {
				t.Errorf("logs leak the secret: %s", logs.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if masked[tc.secret] != 1 {
				t.Errorf("secret masked %d times, want once", masked[tc.secret])
			}
		})
	}
}

// TestDockerCredentialHelper uses a credential helper on PATH, as docker
// does; it changes PATH, so it cannot run in parallel.
func TestDockerCredentialHelper(t *testing.T) {
	bin := t.TempDir()
	script := "#!/bin/sh\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"helper-user\",\"Secret\":\"helper-pass\"}' \"$server\"\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-shiptest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	tests := []struct {
		name  string
		extra map[string]any
	}{
		{name: "credHelpers", extra: map[string]any{"credHelpers": map[string]string{"helper.example": "shiptest"}}},
		{name: "credsStore", extra: map[string]any{"credsStore": "shiptest"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host, rec := memRegistry(t, requireAuth("helper-user", "helper-pass", false))
			var masked []string
			c := newClient(t,
				WithDockerConfigDir(writeDockerConfig(t, nil, tc.extra)),
				WithTransport(&rewriteTransport{host: host}),
				WithMasker(func(s string) { masked = append(masked, s) }))
			if got := c.CredentialSource("helper.example"); got != SourceDockerConfig {
				t.Errorf("CredentialSource = %q, want %q", got, SourceDockerConfig)
			}
			if _, err := c.Push(context.Background(), randomImage(t, 1), []string{"helper.example/app:1"}); err != nil {
				t.Fatalf("Push: %v", err)
			}
			if rec.count(func(q request) bool { return q.user == "helper-user" }) == 0 {
				t.Error("the helper's credentials were not sent")
			}
			if strings.Join(masked, ",") != "helper-pass" {
				t.Errorf("masked %q, want the helper's secret once", masked)
			}
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opt     Option
		wantErr string
	}{
		{name: "password without username", opt: WithCredentials("", "", "p"), wantErr: "registry-username is empty"},
		{name: "username without password", opt: WithCredentials("", "u", ""), wantErr: "registry-password is empty"},
		{name: "bad insecure host", opt: WithInsecure("not a host"), wantErr: "insecure registry"},
		{name: "bad mirror", opt: WithMirrors("bad host!"), wantErr: "registry mirror"},
		{name: "bad push tag", opt: WithPushTags("UPPER/Case:x"), wantErr: "parsing tag"},
		{name: "good", opt: WithMirrors("https://mirror.gcr.io", "http://10.0.0.1:5000")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.opt)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "p\"") {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
}
