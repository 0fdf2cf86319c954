package copier

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

type tarFile struct {
	hdr  tar.Header
	body string
}

func makeTar(t *testing.T, files ...tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := f.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(f.body))
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1600000000, 0)
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t *testing.T, kind string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch kind {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "xz":
		w, err = xz.NewWriter(&buf)
	case "zstd":
		w, err = zstd.NewWriter(&buf)
	default:
		return b
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPlanAddArchive(t *testing.T) {
	t.Parallel()
	simple := makeTar(t,
		tarFile{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o700}},
		tarFile{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "pkg/", Mode: 0o750, Uid: 1000, Gid: 1000}},
		tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "pkg/a.sh", Mode: 0o755, Uid: 1000, Gid: 1000}, body: "echo a"},
		tarFile{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "pkg/l", Linkname: "/etc/passwd", Mode: 0o777}},
		tarFile{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "pkg/hard", Linkname: "pkg/a.sh", Mode: 0o755}},
		tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "/abs/b", Mode: 0o600}, body: "b"},
	)
	// opt is created by BuildKit's MkdirAll, opt/abs is implied by an entry
	// (moby's Untar: 0755 root).
	simpleWant := []string{
		"opt d 0755 0:0",
		"opt/abs d 0755 0:0",
		"opt/abs/b f 0600 0:0 =b",
		"opt/pkg d 0750 1000:1000",
		"opt/pkg/a.sh f 0755 1000:1000 =echo a",
		"opt/pkg/hard h 0755 0:0 ->opt/pkg/a.sh",
		"opt/pkg/l l 0777 0:0 ->/etc/passwd",
	}
	files := map[string][]byte{
		"plain.tar":    simple,
		"x.tar.gz":     compress(t, "gzip", simple),
		"x.tar.xz":     compress(t, "xz", simple),
		"x.tar.zst":    compress(t, "zstd", simple),
		"noext":        compress(t, "gzip", simple),
		"fake.tar.gz":  []byte("not an archive at all"),
		"empty.tar.gz": {},
		"escape.tar":   makeTar(t, tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "../../etc/evil", Mode: 0o644}, body: "x"}),
		"hardescape.tar": makeTar(t,
			tarFile{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "../../etc/shadow"}}),
		"linkfirst.tar": makeTar(t,
			tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "z/target", Mode: 0o644}, body: "T"},
			tarFile{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "a/link", Linkname: "z/target", Mode: 0o644}},
			tarFile{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "m/link", Linkname: "z/target", Mode: 0o644}}),
		"whiteout.tar": makeTar(t, tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "d/.wh.x", Mode: 0o644}}),
		"symlink644.tar": makeTar(t,
			tarFile{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "target", Mode: 0o644, Uid: 3, Gid: 4}}),
		"implied.tar": makeTar(t,
			tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "a/b/f", Mode: 0o644}, body: "f"},
			tarFile{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "g/", Mode: 0o2770, Gid: 9}},
			tarFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "g/in/f", Mode: 0o644}, body: "g"}),
	}
	dir := t.TempDir()
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bz, err := os.ReadFile(filepath.Join("testdata", "hello.tar.bz2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.tar.bz2"), bz, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := OpenContext(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	tests := []struct {
		name    string
		req     Request
		target  fstest.MapFS
		want    []string
		wantErr string
	}{
		{name: "plain tar", req: Request{Sources: []string{"plain.tar"}, Dest: "/opt"}, want: simpleWant},
		{name: "gzip", req: Request{Sources: []string{"x.tar.gz"}, Dest: "/opt/"}, want: simpleWant},
		{name: "xz", req: Request{Sources: []string{"x.tar.xz"}, Dest: "/opt/"}, want: simpleWant},
		{name: "zstd", req: Request{Sources: []string{"x.tar.zst"}, Dest: "/opt/"}, want: simpleWant},
		{name: "detected by content not name", req: Request{Sources: []string{"noext"}, Dest: "/opt"}, want: simpleWant},
		{
			name: "bzip2",
			req:  Request{Sources: []string{"hello.tar.bz2"}, Dest: "/srv/"},
			want: []string{"srv d 0755 0:0", "srv/hello d 0750 1000:1000", "srv/hello/world.txt f 0640 1000:1000 =hi\n"},
		},
		{
			name: "chown replaces owners and creates missing destination",
			req:  Request{Sources: []string{"hello.tar.bz2"}, Dest: "/srv/", Chown: &Owner{UID: 1, GID: 2}},
			want: []string{"srv d 0755 1:2", "srv/hello d 0750 1:2", "srv/hello/world.txt f 0640 1:2 =hi\n"},
		},
		{
			name: "not a tar despite its name is copied",
			req:  Request{Sources: []string{"fake.tar.gz"}, Dest: "/opt/"},
			want: []string{"opt d 0755 0:0", "opt/fake.tar.gz f 0644 0:0 =not an archive at all"},
		},
		{
			name: "empty file is copied",
			req:  Request{Sources: []string{"empty.tar.gz"}, Dest: "/opt/"},
			want: []string{"opt d 0755 0:0", "opt/empty.tar.gz f 0644 0:0 ="},
		},
		{
			name: "COPY never extracts",
			req:  Request{Sources: []string{"hello.tar.bz2"}, Dest: "/opt/h.tbz"},
			want: []string{"opt d 0755 0:0", "opt/h.tbz f 0644 0:0 =" + string(bz)},
		},
		{
			name: "glob of archives extracts each",
			req:  Request{Sources: []string{"*.tar.bz2", "plain.tar"}, Dest: "/opt"},
			want: append([]string{"opt/hello d 0750 1000:1000", "opt/hello/world.txt f 0640 1000:1000 =hi\n"}, simpleWant...),
		},
		{
			name: "hard links are reordered so that the target comes first",
			req:  Request{Sources: []string{"linkfirst.tar"}, Dest: "/l"},
			want: []string{
				"l d 0755 0:0",
				"l/a d 0755 0:0", "l/a/link f 0644 0:0 =T",
				"l/m d 0755 0:0", "l/m/link h 0644 0:0 ->l/a/link",
				"l/z d 0755 0:0", "l/z/target h 0644 0:0 ->l/a/link",
			},
		},
		{
			name: "symlinks get 0777 whatever the archive says",
			req:  Request{Sources: []string{"symlink644.tar"}, Dest: "/s/"},
			want: []string{"s d 0755 0:0", "s/l l 0777 3:4 ->target"},
		},
		{
			// moby's Untar creates implied directories 0755 and chowns them
			// to root; the kernel gives them a setgid parent's bit.
			name:   "implied directories are root-owned and inherit setgid",
			req:    Request{Sources: []string{"implied.tar"}, Dest: "/srv/"},
			target: fstest.MapFS{"srv": dirWith(0o2775, 0, 50)},
			want: []string{
				"srv d 2775 0:50",
				"srv/a d 2755 0:0", "srv/a/b d 2755 0:0", "srv/a/b/f f 0644 0:0 =f",
				"srv/g d 2770 0:9", "srv/g/in d 2755 0:0", "srv/g/in/f f 0644 0:0 =g",
			},
		},
		{
			name:   "chown owns the created destination but not implied directories",
			req:    Request{Sources: []string{"implied.tar"}, Dest: "/new/x/", Chown: &Owner{UID: 1, GID: 2}},
			target: fstest.MapFS{},
			want: []string{
				"new d 0755 1:2", "new/x d 0755 1:2",
				"new/x/a d 0755 0:0", "new/x/a/b d 0755 0:0", "new/x/a/b/f f 0644 1:2 =f",
				"new/x/g d 2770 1:2", "new/x/g/in d 2755 0:0", "new/x/g/in/f f 0644 1:2 =g",
			},
		},
		{
			name:   "link unpacks onto an empty tree",
			req:    Request{Sources: []string{"implied.tar"}, Dest: "/srv/", Link: true},
			target: fstest.MapFS{"srv": dirWith(0o2775, 0, 50)},
			want: []string{
				"srv d 0755 0:0",
				"srv/a d 0755 0:0", "srv/a/b d 0755 0:0", "srv/a/b/f f 0644 0:0 =f",
				"srv/g d 2770 0:9", "srv/g/in d 2755 0:0", "srv/g/in/f f 0644 0:0 =g",
			},
		},
		{name: "entry escaping the destination", req: Request{Sources: []string{"escape.tar"}, Dest: "/opt/"}, wantErr: "leaves the destination"},
		{name: "hard link escaping the destination", req: Request{Sources: []string{"hardescape.tar"}, Dest: "/opt/"}, wantErr: "leaves the destination"},
		{name: "whiteout entry", req: Request{Sources: []string{"whiteout.tar"}, Dest: "/opt/"}, wantErr: "whiteout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := tc.req
			req.Context = c
			req.Add = tc.name != "COPY never extracts"
			if tc.target != nil {
				req.Target = tc.target
			}
			got, err := Plan(context.Background(), req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if s := summary(t, got); !slices.Equal(s, want) {
				t.Errorf("entries:\n got %q\nwant %q", s, want)
			}
			// Contents can be read again, in any order.
			if len(got) > 1 {
				rev := slices.Clone(got)
				slices.Reverse(rev)
				summary(t, rev)
			}
		})
	}
	if ents, err := os.ReadDir(os.TempDir()); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "ship-copier-") {
				t.Errorf("spool file %s left behind", e.Name())
			}
		}
	}
}

func TestPlanAddURL(t *testing.T) {
	t.Parallel()
	body := "downloaded content"
	sum := sha256.Sum256([]byte(body))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	lastMod := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/files/tool.tar.gz", "/":
			w.Header().Set("Last-Modified", lastMod.Format(http.TimeFormat))
			io.WriteString(w, body)
		case "/nomod":
			io.WriteString(w, body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	url := srv.URL + "/files/tool.tar.gz"

	tests := []struct {
		name      string
		req       Request
		want      []string
		wantErr   []string
		wantMtime time.Time
	}{
		{
			name:      "dest with slash takes the name from the URL, mode 0600, Last-Modified",
			req:       Request{Sources: []string{url}, Dest: "/dl/"},
			want:      []string{"dl d 0755 0:0", "dl/tool.tar.gz f 0600 0:0 =" + body},
			wantMtime: lastMod,
		},
		{
			name: "dest without slash is the file",
			req:  Request{Sources: []string{url}, Dest: "/opt/tool"},
			want: []string{"opt d 0755 0:0", "opt/tool f 0600 0:0 =" + body},
		},
		{
			name: "URL without a path",
			req:  Request{Sources: []string{srv.URL + "/"}, Dest: "/dl/"},
			want: []string{"dl d 0755 0:0", "dl/__unnamed__ f 0600 0:0 =" + body},
		},
		{
			name: "checksum matches",
			req:  Request{Sources: []string{url}, Dest: "/dl/", Checksum: digest},
			want: []string{"dl d 0755 0:0", "dl/tool.tar.gz f 0600 0:0 =" + body},
		},
		{
			name: "chown and chmod",
			req:  Request{Sources: []string{srv.URL + "/nomod"}, Dest: "/dl/", Chown: &Owner{UID: 9, GID: 9}, Chmod: ptr(os.FileMode(0o644))},
			want: []string{"dl d 0644 9:9", "dl/nomod f 0644 9:9 =" + body},
		},
		{
			name:    "checksum mismatch names the URL and both digests",
			req:     Request{Sources: []string{url}, Dest: "/dl/", Checksum: "sha256:" + strings.Repeat("0", 64)},
			wantErr: []string{url, "sha256:" + strings.Repeat("0", 64), digest, "checksum mismatch"},
		},
		{
			name:    "not found",
			req:     Request{Sources: []string{srv.URL + "/missing"}, Dest: "/dl/"},
			wantErr: []string{"404", srv.URL + "/missing"},
		},
		{
			name:    "checksum with several sources",
			req:     Request{Sources: []string{url, url}, Dest: "/dl/", Checksum: digest},
			wantErr: []string{"checksum can't be specified for multiple sources"},
		},
		{
			name:    "malformed checksum",
			req:     Request{Sources: []string{url}, Dest: "/dl/", Checksum: "sha256:xyz"},
			wantErr: []string{"invalid checksum"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := tc.req
			req.Add = true
			req.HTTPClient = srv.Client()
			got, err := Plan(context.Background(), req)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("Plan succeeded, want an error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := summary(t, got); !slices.Equal(s, tc.want) {
				t.Errorf("entries:\n got %q\nwant %q", s, tc.want)
			}
			if !tc.wantMtime.IsZero() && !got[len(got)-1].Header.ModTime.Equal(tc.wantMtime) {
				t.Errorf("ModTime = %v, want %v", got[len(got)-1].Header.ModTime, tc.wantMtime)
			}
		})
	}
}
