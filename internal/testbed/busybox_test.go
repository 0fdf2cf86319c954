package testbed

import (
	"archive/tar"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func TestBusyboxImage(t *testing.T) {
	t.Parallel()
	img := BusyboxImage(t)
	again := BusyboxImage(t)
	d1, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := again.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Errorf("busybox image is not deterministic: %s vs %s", d1, d2)
	}
	other := BusyboxImage(t, WithPasswd("root:x:0:0::/root:/bin/sh\n", "root:x:0:\n"))
	if d3, _ := other.Digest(); d3 == d1 {
		t.Errorf("WithPasswd did not change the digest")
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "amd64" || cf.OS != "linux" {
		t.Errorf("platform = %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	if len(cf.Config.Cmd) != 1 || cf.Config.Cmd[0] != "sh" {
		t.Errorf("Cmd = %q", cf.Config.Cmd)
	}
	if len(cf.Config.Env) != 1 || !strings.HasPrefix(cf.Config.Env[0], "PATH=") {
		t.Errorf("Env = %q", cf.Config.Env)
	}
	if cf.Config.Labels[BusyboxLabel] != "busybox" {
		t.Errorf("Labels = %v", cf.Config.Labels)
	}
	if len(cf.History) != 2 || len(cf.RootFS.DiffIDs) != 1 {
		t.Errorf("history %d entries, %d layers; want 2 and 1", len(cf.History), len(cf.RootFS.DiffIDs))
	}

	files := map[string]*tar.Header{}
	contents := map[string]string{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		files[name] = h
		if strings.HasPrefix(name, "etc/") {
			b, _ := io.ReadAll(tr)
			contents[name] = string(b)
		}
	}
	tests := []struct {
		name     string
		typ      byte
		mode     int64
		uid, gid int
		link     string
	}{
		{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755},
		{name: "bin/sh", typ: tar.TypeSymlink, mode: 0o777, link: "/bin/busybox"},
		{name: "bin/cat", typ: tar.TypeSymlink, mode: 0o777, link: "/bin/busybox"},
		{name: "tmp", typ: tar.TypeDir, mode: 0o1777},
		{name: "root", typ: tar.TypeDir, mode: 0o700},
		{name: "home/app", typ: tar.TypeDir, mode: 0o755, uid: 1000, gid: 1000},
		{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644},
		{name: "etc/group", typ: tar.TypeReg, mode: 0o644},
	}
	for _, tc := range tests {
		h, ok := files[tc.name]
		if !ok {
			t.Errorf("%s: missing", tc.name)
			continue
		}
		if h.Typeflag != tc.typ || h.Mode != tc.mode || h.Uid != tc.uid || h.Gid != tc.gid || h.Linkname != tc.link {
			t.Errorf("%s: type %c mode %o uid %d gid %d link %q; want %c %o %d %d %q", tc.name,
				h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, tc.typ, tc.mode, tc.uid, tc.gid, tc.link)
		}
		if !h.ModTime.Equal(BusyboxTime()) {
			t.Errorf("%s: mtime %v", tc.name, h.ModTime)
		}
	}
	if !strings.Contains(contents["etc/passwd"], "app:x:1000:1000:") {
		t.Errorf("/etc/passwd lacks app: %q", contents["etc/passwd"])
	}
	if !strings.Contains(contents["etc/group"], "app:x:1000:") {
		t.Errorf("/etc/group lacks app: %q", contents["etc/group"])
	}
}

func TestBusyboxWithFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		path    string
		wantErr bool
	}{
		{name: "in etc", path: "/etc/motd"},
		{name: "missing parent", path: "/nope/x", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := busyboxOptions{passwd: DefaultPasswd, group: DefaultGroup, extra: map[string]string{}}
			WithFile(tc.path, "hello\n")(&o)
			_, err := busyboxImage([]byte("bin"), []string{"bin/sh"}, o)
			if (err != nil) != tc.wantErr {
				t.Errorf("err = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
}
