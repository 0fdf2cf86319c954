package rootfs

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLookupUser(t *testing.T) {
	t.Parallel()
	withPasswd := fstest.MapFS{"etc/passwd": {Data: []byte(passwd)}}
	noPasswd := fstest.MapFS{"etc/hostname": {Data: []byte("x")}}
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		user    string
		want    User
		wantErr string
	}{
		{"by name", withPasswd, "alice", User{"alice", 1000, 1001, "/home/alice"}, ""},
		{"root", withPasswd, "root", User{"root", 0, 0, "/root"}, ""},
		{"short line", withPasswd, "bob", User{"bob", 1002, 0, ""}, ""},
		{"numeric first entry wins", withPasswd, "1000", User{"alice", 1000, 1001, "/home/alice"}, ""},
		{"numeric unknown", withPasswd, "4242", User{"4242", 4242, 4242, "/"}, ""},
		{"numeric zero", withPasswd, "0", User{"root", 0, 0, "/root"}, ""},
		{"bad uid line skipped", withPasswd, "eve", User{}, `"eve": not in /etc/passwd`},
		{"comment is not a user", withPasswd, "# the system users", User{}, "not in /etc/passwd"},
		{"unknown", withPasswd, "mallory", User{}, `looking up user "mallory": not in /etc/passwd`},
		{"no passwd, name", noPasswd, "alice", User{}, `"alice": no /etc/passwd in the image`},
		{"no passwd, root", noPasswd, "root", User{"root", 0, 0, "/root"}, ""},
		{"no passwd, numeric", noPasswd, "33", User{"33", 33, 33, "/"}, ""},
		{"empty", withPasswd, "", User{}, "empty name"},
		{"negative is a name", withPasswd, "-1", User{}, "not in /etc/passwd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := LookupUser(tt.fsys, tt.user)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if tt.user != "" && !errors.Is(err, ErrNotFound) {
					t.Errorf("error %v does not wrap ErrNotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLookupGroup(t *testing.T) {
	t.Parallel()
	withGroup := fstest.MapFS{"etc/group": {Data: []byte(group)}}
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		group   string
		want    int
		wantErr string
	}{
		{"by name", withGroup, "staff", 50, ""},
		{"short line", withGroup, "users", 100, ""},
		{"shorter line", withGroup, "short", 0, ""},
		{"numeric", withGroup, "123", 123, ""},
		{"root without file", fstest.MapFS{}, "root", 0, ""},
		{"unknown", withGroup, "wheel", 0, `looking up group "wheel": not in /etc/group`},
		{"no group file", fstest.MapFS{}, "staff", 0, "no /etc/group in the image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := LookupGroup(tt.fsys, tt.group)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrNotFound) {
					t.Fatalf("error %v, want one containing %q and wrapping ErrNotFound", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestLookupUserInView(t *testing.T) {
	t.Parallel()
	img := fixture(t)
	v := NewView(img)
	u, err := LookupUser(v, "alice")
	if err != nil || u.UID != 1000 || u.GID != 1001 {
		t.Fatalf("LookupUser = %+v, %v", u, err)
	}
	g, err := LookupGroup(v, "staff")
	if err != nil || g != 50 {
		t.Fatalf("LookupGroup = %d, %v", g, err)
	}
	// etc/passwd is in the bottom layer: the top ones are read on the way.
	if got := img.counts(); !equal(got, []int64{1, 1, 1}) {
		t.Errorf("layer reads %v, want [1 1 1]", got)
	}
}
