package testbed

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDocker(t *testing.T) {
	t.Parallel()
	d := Docker(t)
	reg := StartRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	base := reg.Ref("testbed/busybox:1")
	PushImage(t, BusyboxImage(t), base)
	built := reg.Ref("testbed/built:1")
	t.Cleanup(func() { d.RemoveImages(context.Background(), base, built) })

	if err := d.Pull(ctx, base); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "shell", args: []string{"sh", "-c", "echo hello"}, want: "hello\n"},
		{name: "user app", args: []string{"id", "app"}, want: "uid=1000(app) gid=1000(app) groups=1000(app),50(staff)\n"},
		{name: "tmp sticky", args: []string{"stat", "-c", "%a", "/tmp"}, want: "1777\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := d.Run(ctx, base, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if out != tc.want {
				t.Errorf("output %q, want %q", out, tc.want)
			}
		})
	}

	dir := t.TempDir()
	df := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(df, []byte("ARG BASE\nFROM $BASE\nCOPY --chown=app:app hello.txt /hello.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Build(ctx, dir, df, built, "BASE="+base); err != nil {
		t.Fatal(err)
	}
	if err := d.Push(ctx, built); err != nil {
		t.Fatal(err)
	}
	if err := d.Build(ctx, dir, filepath.Join(dir, "missing"), reg.Ref("testbed/bad:1")); err == nil {
		t.Errorf("build with a missing Dockerfile succeeded")
	}

	var buf bytes.Buffer
	if err := d.Export(ctx, built, &buf); err != nil {
		t.Fatal(err)
	}
	found := map[string]*tar.Header{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		found[strings.TrimSuffix(h.Name, "/")] = h
	}
	if h := found["hello.txt"]; h == nil || h.Uid != 1000 || h.Gid != 1000 || h.Size != 3 {
		t.Errorf("hello.txt in export: %+v", h)
	}
	if found["bin/busybox"] == nil || found[".dockerenv"] == nil {
		t.Errorf("export lacks bin/busybox or .dockerenv (%d entries)", len(found))
	}
}
