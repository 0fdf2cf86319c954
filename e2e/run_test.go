package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestRunBuiltImage builds images with ship, pushes them, and runs them
// with docker.
func TestRunBuiltImage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	files := map[string]file{"hello.txt": txt("hello from ship\n"), "bin/greet": txtMode("#!/bin/sh\necho \"greetings, $1\"\n", 0o755)}
	tests := []struct {
		name       string
		dockerfile string
		args       []string
		want       string
	}{
		{name: "cmd exec form", dockerfile: base + "COPY hello.txt /app/hello.txt\nCMD [\"cat\", \"/app/hello.txt\"]\n", want: "hello from ship\n"},
		{name: "workdir and relative path", dockerfile: base + "WORKDIR /app\nCOPY hello.txt .\nCMD [\"cat\", \"hello.txt\"]\n", want: "hello from ship\n"},
		{name: "entrypoint shell form with env and user", dockerfile: base +
			"ENV GREETING=hi\nUSER app\nENTRYPOINT echo \"$GREETING from $(id -un) in $(pwd)\"\n", want: "hi from app in /\n"},
		{name: "entrypoint exec with args", dockerfile: base + "COPY bin/greet /usr/local/bin/greet\nENTRYPOINT [\"greet\"]\nCMD [\"nobody\"]\n",
			args: []string{"world"}, want: "greetings, world\n"},
		{name: "chown by name", dockerfile: base + "COPY --chown=app:staff hello.txt /data/h.txt\nCMD [\"stat\", \"-c\", \"%U:%G %a\", \"/data/h.txt\"]\n",
			want: "app:staff 644\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			c := diffCase{name: tc.name, files: files, dockerfile: tc.dockerfile}
			dir, dockerfile := e.prepare(t, c)
			tag := e.reg.Ref("run/" + tagName(tc.name) + ":1")
			if err := buildWithShip(ctx, t, e, dir, dockerfile, tag, c); err != nil {
				t.Fatal(err)
			}
			if err := e.docker.Pull(ctx, tag); err != nil {
				t.Fatal(err)
			}
			out, err := e.docker.Run(ctx, tag, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if out != tc.want {
				t.Errorf("output %q, want %q", out, tc.want)
			}
		})
	}
}

// TestOutputTar writes the image with --output-tar (no registry involved),
// loads it with docker load and runs it.
func TestOutputTar(t *testing.T) {
	t.Parallel()
	d := testbed.Docker(t)
	tests := []struct {
		name string
		tags []string
		load string // the name docker load reports
	}{
		{name: "tagged", tags: []string{"ship.e2e/output-tar:1", "ship.e2e/output-tar:latest"}, load: "ship.e2e/output-tar:1"},
		{name: "untagged", load: "ship.local/image:latest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			dir := t.TempDir()
			// A scratch image with the host's static busybox: no registry needed.
			bb, err := os.ReadFile(testbed.BusyboxPath)
			if err != nil {
				testbed.RequireService(t, "busybox-static: "+err.Error())
			}
			writeTree(t, dir, map[string]file{
				"Dockerfile": txt("FROM scratch\nCOPY busybox /bin/busybox\nCOPY msg.txt /msg.txt\n" +
					"ENTRYPOINT [\"/bin/busybox\"]\nCMD [\"cat\", \"/msg.txt\"]\n"),
				"msg.txt": txt("loaded and running\n"),
				"busybox": txtMode(string(bb), 0o755),
			})
			work := t.TempDir()
			tarPath := filepath.Join(work, "image.tar")
			args := []string{"--context", dir, "--output-tar", tarPath, "--output", filepath.Join(work, "layout")}
			for _, tag := range tc.tags {
				args = append(args, "--tag", tag)
			}
			res := runShipInTemp(t, ctx, work, nil, args...)
			if res.Code != 0 {
				t.Fatalf("ship failed: %s", res)
			}
			t.Cleanup(func() { d.RemoveImages(context.Background(), append(tc.tags, tc.load)...) })
			out, err := d.Load(ctx, tarPath)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "Loaded image: "+tc.load) {
				t.Errorf("docker load said %q, want it to load %s", out, tc.load)
			}
			got, err := d.Run(ctx, tc.load)
			if err != nil {
				t.Fatal(err)
			}
			if got != "loaded and running\n" {
				t.Errorf("output %q", got)
			}
			if _, err := os.Stat(filepath.Join(work, "layout", "index.json")); err != nil {
				t.Errorf("OCI layout not written: %v", err)
			}
		})
	}
}
