package rootfs

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestResolveRunUser(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"etc/passwd": {Data: []byte("root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1000:app:/home/app:/bin/sh\nsvc:x:1001:1001::/srv:/bin/sh\n")},
		"etc/group":  {Data: []byte("root:x:0:\napp:x:1000:\nstaff:x:50:app,svc\nwheel:x:10:app\n")},
	}
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		spec    string
		want    RunUser
		wantErr string
	}{
		{name: "default is root", fsys: fsys, spec: "", want: RunUser{UID: 0, GID: 0, Groups: []int{0}, Home: "/root"}},
		{name: "name with member groups", fsys: fsys, spec: "app", want: RunUser{UID: 1000, GID: 1000, Groups: []int{1000, 50, 10}, Home: "/home/app"}},
		{name: "name and group", fsys: fsys, spec: "app:staff", want: RunUser{UID: 1000, GID: 50, Groups: []int{50}, Home: "/home/app"}},
		{name: "numeric pair skips files", fsys: fsys, spec: "1234:50", want: RunUser{UID: 1234, GID: 50, Groups: []int{50}, Home: "/"}},
		{name: "numeric uid with entry", fsys: fsys, spec: "1001", want: RunUser{UID: 1001, GID: 1001, Groups: []int{1001, 50}, Home: "/srv"}},
		{name: "numeric uid without entry", fsys: fsys, spec: "4321", want: RunUser{UID: 4321, GID: 0, Groups: []int{0}, Home: "/"}},
		{name: "unknown name", fsys: fsys, spec: "ghost", wantErr: "unable to find user ghost"},
		{name: "unknown group name", fsys: fsys, spec: "app:ghosts", wantErr: "unable to find group ghosts"},
		{name: "no passwd file, default", fsys: fstest.MapFS{}, spec: "", want: RunUser{Groups: []int{0}, Home: "/"}},
		{name: "no passwd file, name", fsys: fstest.MapFS{}, spec: "app", wantErr: "unable to find user app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ResolveRunUser(tt.fsys, tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.UID != tt.want.UID || got.GID != tt.want.GID || got.Home != tt.want.Home || !slices.Equal(got.Groups, tt.want.Groups) {
				t.Errorf("ResolveRunUser(%q) = %+v, want %+v", tt.spec, got, tt.want)
			}
		})
	}
}
