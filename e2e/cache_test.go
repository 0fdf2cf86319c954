package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/testbed"
)

// runSteps returns "INSTRUCTION cached" or "INSTRUCTION ran" for each RUN
// of the metadata in ship's outputs line.
func runSteps(t *testing.T, res shipResult) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	var out struct {
		Metadata struct {
			Stages []struct {
				Steps []struct {
					Instruction string `json:"instruction"`
					Cached      bool   `json:"cached"`
				} `json:"steps"`
			} `json:"stages"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		t.Fatalf("outputs line: %v\n%s", err, res)
	}
	var steps []string
	for _, s := range out.Metadata.Stages {
		for _, st := range s.Steps {
			if strings.HasPrefix(st.Instruction, "RUN") {
				verdict := " ran"
				if st.Cached {
					verdict = " cached"
				}
				steps = append(steps, st.Instruction+verdict)
			}
		}
	}
	return steps
}

// tagCount returns how many tags repo has in reg.
func tagCount(t *testing.T, reg *testbed.Registry, repo string) int {
	t.Helper()
	resp, err := http.Get(reg.URL() + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	return len(list.Tags)
}

// TestRegistryLayerCache: two machines (nothing shared but the registry)
// build one Dockerfile after a code change. The second reuses the RUN
// layer from cache-repo instead of running it, its image runs with the
// first one's RUN output, and a fork's pull request only reads the cache.
func TestRegistryLayerCache(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d := testbed.Docker(t)
	reg := testbed.StartRegistry(t)
	testbed.PushImage(t, testbed.BusyboxImage(t), reg.Ref("base/busybox:1"))
	src := t.TempDir()
	writeTree(t, src, map[string]file{
		"Dockerfile": txt("FROM " + reg.Ref("base/busybox:1") + "\n" +
			"RUN head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /rand\n" +
			"COPY app.txt /app.txt\n" +
			"CMD [\"cat\", \"/rand\", \"/app.txt\"]\n"),
		"app.txt": txt("v1\n"),
	})
	cacheRepo := reg.Ref("app/cache")
	build := func(tag string, env ...string) shipResult {
		t.Helper()
		res := runShipInTemp(t, ctx, t.TempDir(), env, "--context", src, "--tag", tag, "--push",
			"--insecure-registry", reg.Host, "--scan=false", "--cache-dir", t.TempDir(), "--cache-repo", cacheRepo)
		if res.Code != 0 {
			t.Fatalf("ship: %s", res)
		}
		return res
	}
	run := func(tag string) string {
		t.Helper()
		t.Cleanup(func() { d.RemoveImages(context.Background(), tag) })
		if err := d.Pull(ctx, tag); err != nil {
			t.Fatal(err)
		}
		out, err := d.Run(ctx, tag)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	first := build(reg.Ref("app:1"))
	if got := runSteps(t, first); len(got) != 1 || !strings.HasSuffix(got[0], " ran") {
		t.Fatalf("first machine: %v, want the RUN run", got)
	}
	out1 := run(reg.Ref("app:1"))

	if err := os.WriteFile(filepath.Join(src, "app.txt"), []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := build(reg.Ref("app:2"))
	if got := runSteps(t, second); len(got) != 1 || !strings.HasSuffix(got[0], " cached") {
		t.Fatalf("second machine: %v, want the RUN from cache-repo", got)
	}
	out2 := run(reg.Ref("app:2"))
	rand1, _, _ := strings.Cut(out1, "v1")
	if out2 != rand1+"v2\n" {
		t.Errorf("second image printed %q, want the first RUN's bytes %q then v2", out2, rand1)
	}

	// A fork's pull request with another RUN: it runs, and nothing is
	// written to the cache.
	df := filepath.Join(src, "Dockerfile")
	data, err := os.ReadFile(df)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(df, []byte(strings.Replace(string(data), "COPY app.txt", "RUN echo fork > /fork\nCOPY app.txt", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	event := filepath.Join(t.TempDir(), "event.json")
	payload := `{"number":3,"pull_request":{"number":3,"head":{"sha":"` + prHeadSHA + `","repo":{"full_name":"someone/app"}},"base":{"repo":{"full_name":"intesys/app"}}}}`
	if err := os.WriteFile(event, []byte(payload), 0o644); err != nil {
		t.Fatal(err)
	}
	tagsBefore := tagCount(t, reg, "app/cache")
	fork := build(reg.Ref("app:fork"), "GITHUB_EVENT_PATH="+event)
	if got := runSteps(t, fork); len(got) != 2 || !strings.HasSuffix(got[0], " cached") || !strings.HasSuffix(got[1], " ran") {
		t.Errorf("fork: %v, want the first RUN cached and the new one run", got)
	}
	if !strings.Contains(fork.Stderr, "only read") {
		t.Errorf("no log line saying the fork only reads the cache:\n%s", fork.Stderr)
	}
	if n := tagCount(t, reg, "app/cache"); n != tagsBefore {
		t.Errorf("a fork's build wrote to the cache: %d tags, had %d", n, tagsBefore)
	}
}
