package provenance

import (
	"bytes"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"
)

const (
	imageDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	baseDigest  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	goDigest    = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	commit      = "0123456789abcdef0123456789abcdef01234567"
)

func sampleBuild() Build {
	return Build{
		Subject:    Subject{Name: "ghcr.io/org/app", Digest: imageDigest},
		Dockerfile: "docker/Dockerfile",
		Target:     "runtime",
		Platform:   "linux/arm64",
		BuildArgs:  map[string]string{"VERSION": "1.2.3", "ALPINE": "3.20", "<&>": "x<y"},
		Source: &Source{
			URI:    "https://gitlab-ci-token:glcbt-secretvalue@gitlab.example.com/org/app.git?private_token=qs#frag",
			Ref:    "refs/heads/main",
			Commit: commit,
		},
		Bases: []Dependency{
			{Ref: "docker.io/library/alpine:3.20", Digest: baseDigest, Platform: "linux/arm64"},
			{Ref: "golang:1.26@" + goDigest, Digest: goDigest},
			{Ref: "docker.io/library/alpine:3.20", Digest: baseDigest, Platform: "linux/arm64"}, // second stage, same base
		},
		BuilderID:      "https://github.com/intesys/ship-action@v1",
		BuilderVersion: map[string]string{"ship": "1.0.0"},
		InvocationID:   "https://gitlab.example.com/org/app/-/jobs/42",
		Started:        time.Date(2026, 11, 27, 9, 0, 0, 0, time.FixedZone("CET", 3600)),
		Finished:       time.Date(2026, 11, 27, 8, 5, 30, 0, time.UTC),
	}
}

// provDoc is the statement as a reader sees it.
type provDoc struct {
	Type    string `json:"_type"`
	Subject []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	PredicateType string `json:"predicateType"`
	Predicate     struct {
		BuildDefinition struct {
			BuildType            string            `json:"buildType"`
			ExternalParameters   map[string]any    `json:"externalParameters"`
			InternalParameters   map[string]any    `json:"internalParameters"`
			ResolvedDependencies []json.RawMessage `json:"resolvedDependencies"`
		} `json:"buildDefinition"`
		RunDetails struct {
			Builder struct {
				ID      string            `json:"id"`
				Version map[string]string `json:"version"`
			} `json:"builder"`
			Metadata struct {
				InvocationID string `json:"invocationId"`
				StartedOn    string `json:"startedOn"`
				FinishedOn   string `json:"finishedOn"`
			} `json:"metadata"`
		} `json:"runDetails"`
	} `json:"predicate"`
}

type dep struct {
	URI    string            `json:"uri"`
	Digest map[string]string `json:"digest"`
}

func decode(t *testing.T, data []byte) (provDoc, []dep) {
	t.Helper()
	var d provDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("decoding the statement: %v\n%s", err, data)
	}
	var deps []dep
	for _, raw := range d.Predicate.BuildDefinition.ResolvedDependencies {
		var x dep
		dd := json.NewDecoder(bytes.NewReader(raw))
		dd.DisallowUnknownFields()
		if err := dd.Decode(&x); err != nil {
			t.Fatalf("decoding dependency %s: %v", raw, err)
		}
		deps = append(deps, x)
	}
	return d, deps
}

func TestStatementFields(t *testing.T) {
	t.Parallel()
	data, err := Statement(sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	d, deps := decode(t, data)
	if d.Type != "https://in-toto.io/Statement/v1" || d.PredicateType != "https://slsa.dev/provenance/v1" {
		t.Errorf("_type %q predicateType %q", d.Type, d.PredicateType)
	}
	if len(d.Subject) != 1 || d.Subject[0].Name != "ghcr.io/org/app" ||
		!maps.Equal(d.Subject[0].Digest, map[string]string{"sha256": strings.Repeat("1", 64)}) {
		t.Errorf("subject %+v", d.Subject)
	}
	bd := d.Predicate.BuildDefinition
	if bd.BuildType != DefaultBuildType {
		t.Errorf("buildType %q", bd.BuildType)
	}
	if bd.InternalParameters != nil {
		t.Errorf("internalParameters %v, want none", bd.InternalParameters)
	}
	ep := bd.ExternalParameters
	wantSource := "git+https://gitlab.example.com/org/app.git@refs/heads/main"
	if ep["source"] != wantSource || ep["dockerfile"] != "docker/Dockerfile" || ep["target"] != "runtime" || ep["platform"] != "linux/arm64" {
		t.Errorf("externalParameters %v", ep)
	}
	args, _ := ep["buildArgs"].(map[string]any)
	if len(args) != 3 || args["VERSION"] != "1.2.3" || args["<&>"] != "x<y" {
		t.Errorf("buildArgs %v", args)
	}
	want := []dep{
		{URI: wantSource, Digest: map[string]string{"gitCommit": commit}},
		{URI: "pkg:docker/alpine@3.20?platform=linux%2Farm64", Digest: map[string]string{"sha256": strings.Repeat("2", 64)}},
		{URI: "pkg:docker/golang@1.26?digest=sha256%3A" + strings.Repeat("3", 64), Digest: map[string]string{"sha256": strings.Repeat("3", 64)}},
	}
	if len(deps) != len(want) {
		t.Fatalf("resolvedDependencies %+v, want %+v", deps, want)
	}
	for i := range want {
		if deps[i].URI != want[i].URI || !maps.Equal(deps[i].Digest, want[i].Digest) {
			t.Errorf("dependency %d: %+v, want %+v", i, deps[i], want[i])
		}
	}
	rd := d.Predicate.RunDetails
	if rd.Builder.ID != "https://github.com/intesys/ship-action@v1" || rd.Builder.Version["ship"] != "1.0.0" {
		t.Errorf("builder %+v", rd.Builder)
	}
	md := rd.Metadata
	if md.InvocationID != "https://gitlab.example.com/org/app/-/jobs/42" || md.StartedOn != "2026-11-27T08:00:00Z" || md.FinishedOn != "2026-11-27T08:05:30Z" {
		t.Errorf("metadata %+v", md)
	}
	for _, secret := range []string{"glcbt-secretvalue", "gitlab-ci-token", "private_token", "frag"} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("statement contains %q:\n%s", secret, data)
		}
	}
	if bytes.Contains(data, []byte(`\u003c`)) {
		t.Errorf("statement escapes HTML: %s", data)
	}
}

func TestStatementMinimal(t *testing.T) {
	t.Parallel()
	data, err := Statement(Build{
		Subject:   Subject{Name: "app", Digest: imageDigest},
		BuildType: "https://example.com/bt",
		BuilderID: "b",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"app","digest":{"sha256":"` + strings.Repeat("1", 64) +
		`"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"https://example.com/bt","externalParameters":{}},"runDetails":{"builder":{"id":"b"}}}}`
	if string(data) != want {
		t.Errorf("minimal statement\n got %s\nwant %s", data, want)
	}
}

func TestStatementDeterministic(t *testing.T) {
	t.Parallel()
	b := sampleBuild()
	for i := 0; i < 20; i++ {
		b.BuildArgs[string(rune('a'+i))] = "v"
	}
	first, err := Statement(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		again, err := Statement(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("two calls differ:\n%s\n%s", first, again)
		}
	}
}

func TestStatementErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*Build)
		want   string
	}{
		{"no subject name", func(b *Build) { b.Subject.Name = "" }, "subject has no name"},
		{"bad subject digest", func(b *Build) { b.Subject.Digest = "1111" }, `subject ghcr.io/org/app: digest "1111"`},
		{"upper-case digest", func(b *Build) { b.Subject.Digest = "sha256:ABCD" }, "is not ALGORITHM:HEX"},
		{"no builder", func(b *Build) { b.BuilderID = "" }, "builder id is empty"},
		{"base without digest", func(b *Build) { b.Bases[1].Digest = "" }, "base image golang:1.26@"},
		{"base without ref", func(b *Build) { b.Bases[0].Ref = "" }, "base image has no reference"},
		{"source without URI", func(b *Build) { b.Source.URI = "" }, "source has no URI"},
		{"bad commit", func(b *Build) { b.Source.Commit = "main" }, `source commit "main"`},
	} {
		b := sampleBuild()
		tc.change(&b)
		_, err := Statement(b)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line containing %q", tc.name, err, tc.want)
		}
	}
}

func TestImagePURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ ref, platform, want string }{
		{"alpine", "", "pkg:docker/alpine@latest"},
		{"alpine:3.20", "linux/amd64", "pkg:docker/alpine@3.20?platform=linux%2Famd64"},
		{"docker.io/library/alpine:3.20", "", "pkg:docker/alpine@3.20"},
		{"index.docker.io/org/app:1", "", "pkg:docker/org/app@1"},
		{"docker.io/library/team/app:1", "", "pkg:docker/library/team/app@1"},
		{"ghcr.io/org/app:v1", "", "pkg:docker/ghcr.io/org/app@v1"},
		{"localhost:5000/app", "", "pkg:docker/localhost:5000/app@latest"},
		{"localhost/app:2", "", "pkg:docker/localhost/app@2"},
		{"alpine@sha256:ab", "linux/arm64/v8", "pkg:docker/alpine?digest=sha256%3Aab&platform=linux%2Farm64%2Fv8"},
		{"alpine:3@sha256:ab", "", "pkg:docker/alpine@3?digest=sha256%3Aab"},
	} {
		if got := imagePURL(tc.ref, tc.platform); got != tc.want {
			t.Errorf("imagePURL(%q, %q) = %q, want %q", tc.ref, tc.platform, got, tc.want)
		}
	}
}

func TestPublicURI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"https://github.com/org/app", "https://github.com/org/app"},
		{"https://x-access-token:ghs_abc@github.com/org/app.git", "https://github.com/org/app.git"},
		{"https://host/org/app?token=1#x", "https://host/org/app"},
		{"ssh://git@github.com/org/app.git", "ssh://github.com/org/app.git"},
		{"git@github.com:org/app.git", "github.com:org/app.git"},
		{"git+https://u:p@host/r", "git+https://host/r"},
	} {
		if got := publicURI(tc.in); got != tc.want {
			t.Errorf("publicURI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPublicBuildArgs(t *testing.T) {
	t.Parallel()
	in := map[string]string{
		"VERSION":           "1",
		"ALPINE_VERSION":    "3.20",
		"HTTP_PROXY":        "http://user:pass@proxy:3128",
		"https_proxy":       "x",
		"PROXY_MODE":        "direct",
		"GITHUB_TOKEN":      "x",
		"npm_token":         "x",
		"DB_PASSWORD":       "x",
		"passwd":            "x",
		"MY_PWORD":          "x",
		"Client_Secret":     "x",
		"API_KEY":           "x",
		"apikey":            "x",
		"SSH_KEY_PATH":      "x",
		"AWS_CREDENTIALS":   "x",
		"credential_helper": "x",
		"NPM_AUTH":          "x",
	}
	got := PublicBuildArgs(in)
	want := map[string]string{"VERSION": "1", "ALPINE_VERSION": "3.20", "PROXY_MODE": "direct"}
	if !maps.Equal(got, want) {
		t.Errorf("PublicBuildArgs = %v, want %v", got, want)
	}
	if len(in) != 17 {
		t.Errorf("the input was changed: %v", in)
	}
	if got := PublicBuildArgs(nil); got == nil || len(got) != 0 {
		t.Errorf("PublicBuildArgs(nil) = %#v, want an empty map", got)
	}
}
