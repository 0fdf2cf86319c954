package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestMerge builds one Dockerfile for two platforms as two matrix jobs
// would (COPY only: no emulation needed), pushes each, then `ship merge`
// pushes one index of both; docker pulls the machine's image from it.
func TestMerge(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d := testbed.Docker(t)
	reg := testbed.StartRegistry(t)
	src := t.TempDir()
	writeTree(t, src, map[string]file{
		"Dockerfile": txt("FROM scratch\nARG TARGETARCH\nCOPY app.txt /app-$TARGETARCH.txt\n"),
		"app.txt":    txt("app\n"),
	})
	images := map[string]string{}
	for _, arch := range []string{"amd64", "arm64"} {
		tag := reg.Ref("app:" + arch)
		res := runShipInTemp(t, ctx, t.TempDir(), nil, "--context", src, "--platform", "linux/"+arch, "--tag", tag,
			"--push", "--insecure-registry", reg.Host, "--scan=false")
		if res.Code != 0 {
			t.Fatalf("build for %s: %s", arch, res)
		}
		images[arch] = lastOutputs(t, res).Image
	}
	index := reg.Ref("app:1")
	res := runShipInTemp(t, ctx, t.TempDir(), nil, "merge", images["amd64"], images["arm64"], "--tag", index, "--insecure-registry", reg.Host)
	if res.Code != 0 {
		t.Fatalf("ship merge: %s", res)
	}
	out := lastOutputs(t, res)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.URL()+"/v2/app/manifests/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var idx struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest   string `json:"digest"`
			Platform struct {
				Architecture string `json:"architecture"`
			} `json:"platform"`
		} `json:"manifests"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range idx.Manifests {
		got = append(got, m.Platform.Architecture+"="+m.Digest)
	}
	_, amd, _ := strings.Cut(images["amd64"], "@")
	_, arm, _ := strings.Cut(images["arm64"], "@")
	if want := []string{"amd64=" + amd, "arm64=" + arm}; !slices.Equal(got, want) || resp.Header.Get("Docker-Content-Digest") != out.Digest {
		t.Errorf("index %s: %v (%s), want %v (%s)", index, got, resp.Header.Get("Docker-Content-Digest"), want, out.Digest)
	}

	t.Cleanup(func() { d.RemoveImages(context.Background(), index) })
	if err := d.Pull(ctx, index); err != nil {
		t.Fatal(err)
	}
	arch, err := d.Exec(ctx, "image", "inspect", "--format", "{{.Architecture}}", index)
	if err != nil || strings.TrimSpace(string(arch)) != "amd64" {
		t.Errorf("docker pulled %q (%v), want the amd64 image", arch, err)
	}
}

// lastOutputs decodes ship's outputs line.
func lastOutputs(t *testing.T, res shipResult) struct{ Digest, Image string } {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	var out struct{ Digest, Image string }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil || out.Digest == "" {
		t.Fatalf("outputs line: %v\n%s", err, res)
	}
	return out
}
