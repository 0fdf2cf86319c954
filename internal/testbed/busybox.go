package testbed

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BusyboxPath is where Debian's busybox-static package installs the static
// busybox binary that BusyboxImage puts into its image.
const BusyboxPath = "/usr/bin/busybox"

// BusyboxTime returns the fixed modification and creation time of everything
// in the busybox image, so the image digest is the same on every run.
func BusyboxTime() time.Time { return time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC) }

// DefaultPasswd is the /etc/passwd of the busybox image: root, nobody and
// the user "app" (uid 1000, gid 1000).
const DefaultPasswd = `root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
`

// DefaultGroup is the /etc/group of the busybox image: root, staff (50),
// nogroup (65534) and app (1000).
const DefaultGroup = `root:x:0:
staff:x:50:app
nogroup:x:65534:
app:x:1000:
`

// BusyboxLabel is the label key the busybox image carries (value "busybox"),
// so tests can check that labels are inherited from a base image.
const BusyboxLabel = "org.example.testbed.base"

// BusyboxOption changes the busybox image BusyboxImage builds.
type BusyboxOption func(*busyboxOptions)

type busyboxOptions struct {
	passwd, group string
	extra         map[string]string
}

// WithPasswd replaces the contents of /etc/passwd and /etc/group.
func WithPasswd(passwd, group string) BusyboxOption {
	return func(o *busyboxOptions) { o.passwd, o.group = passwd, group }
}

// WithFile adds a regular file (mode 0644, owned by root) at the absolute
// path p with the given content. Parent directories must exist in the image
// (bin, etc, home, root, sbin, tmp, usr/bin, usr/sbin, var).
func WithFile(p, content string) BusyboxOption {
	return func(o *busyboxOptions) { o.extra[strings.TrimPrefix(p, "/")] = content }
}

// BusyboxImage returns a hermetic, single-layer linux/amd64 busybox image
// built from the host's static busybox (BusyboxPath): /bin/busybox plus a
// symlink for every applet at the path `busybox --list-full` names,
// /etc/passwd and /etc/group (DefaultPasswd, DefaultGroup), /tmp (1777),
// /root (0700) and /home/app (owned by 1000:1000). The config has
// Architecture, OS, Env PATH, Cmd ["sh"] and the label BusyboxLabel. Every
// time is BusyboxTime, so the digest only depends on the busybox binary and
// the options. It fails the test when CI=true and busybox is missing, and
// skips it otherwise.
func BusyboxImage(t testing.TB, opts ...BusyboxOption) v1.Image {
	t.Helper()
	o := busyboxOptions{passwd: DefaultPasswd, group: DefaultGroup, extra: map[string]string{}}
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		RequireService(t, fmt.Sprintf("busybox-static (%s): %v", BusyboxPath, err))
		return nil
	}
	out, err := exec.Command(BusyboxPath, "--list-full").Output()
	if err != nil {
		t.Fatalf("listing busybox applets: %v", err)
	}
	img, err := busyboxImage(bin, strings.Fields(string(out)), o)
	if err != nil {
		t.Fatalf("building busybox image: %v", err)
	}
	return img
}

func busyboxImage(bin []byte, applets []string, o busyboxOptions) (v1.Image, error) {
	type file struct {
		hdr  tar.Header
		data []byte
	}
	files := map[string]file{}
	dir := func(name string, mode int64, uid, gid int) {
		files[name] = file{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: gid}}
	}
	reg := func(name string, mode int64, data []byte) {
		files[name] = file{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data: data}
	}
	for _, d := range []string{"bin", "etc", "home", "sbin", "usr", "usr/bin", "usr/sbin", "var"} {
		dir(d, 0o755, 0, 0)
	}
	dir("root", 0o700, 0, 0)
	dir("tmp", 0o1777, 0, 0)
	dir("home/app", 0o755, 1000, 1000)
	reg("bin/busybox", 0o755, bin)
	reg("etc/passwd", 0o644, []byte(o.passwd))
	reg("etc/group", 0o644, []byte(o.group))
	for p, content := range o.extra {
		if _, ok := files[path.Dir(p)]; !ok {
			return nil, fmt.Errorf("adding /%s: parent directory missing", p)
		}
		reg(p, 0o644, []byte(content))
	}
	for _, a := range applets {
		a = strings.TrimPrefix(a, "/")
		if a == "bin/busybox" {
			continue
		}
		if _, ok := files[path.Dir(a)]; !ok {
			dir(path.Dir(a), 0o755, 0, 0)
		}
		files[a] = file{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: a, Linkname: "/bin/busybox", Mode: 0o777}}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := files[n]
		f.hdr.ModTime = BusyboxTime()
		f.hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&f.hdr); err != nil {
			return nil, fmt.Errorf("writing %s: %w", n, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("writing %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing tar: %w", err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("making layer: %w", err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: BusyboxTime()},
			CreatedBy: "ADD busybox-static rootfs / # testbed",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("appending layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Created = v1.Time{Time: BusyboxTime()}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = []string{"sh"}
	cf.Config.Labels = map[string]string{BusyboxLabel: "busybox"}
	cf.History = append(cf.History, v1.History{
		Created:    v1.Time{Time: BusyboxTime()},
		CreatedBy:  `CMD ["sh"]`,
		EmptyLayer: true,
	})
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting config: %w", err)
	}
	return img, nil
}

// PushImage pushes img to ref (plain HTTP allowed, as for the loopback test
// registry) and returns its digest. Failures fail the test.
func PushImage(t testing.TB, img v1.Image, ref string, opts ...remote.Option) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("parsing %s: %v", ref, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.Write(r, img, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("computing digest of %s: %v", ref, err)
	}
	return d
}
