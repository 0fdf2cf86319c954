package e2e

import (
	"archive/tar"
	"strings"
	"testing"
)

func TestLegacyCreatedBy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		ref, cand string
		want      bool
	}{
		{name: "copy flags", ref: "COPY a /b # buildkit", cand: "COPY --chown=app:app --chmod=600 a /b # buildkit", want: true},
		{name: "copy other source", ref: "COPY a /b # buildkit", cand: "COPY --chown=app c /b # buildkit"},
		{name: "add flags", ref: "ADD http://x/y /z # buildkit", cand: "ADD --chown=1 http://x/y /z # buildkit", want: true},
		{name: "arg values", ref: "ARG A B=1", cand: "ARG A=x B=2", want: true},
		{name: "arg names", ref: "ARG A", cand: "ARG B=1"},
		{name: "expose", ref: "EXPOSE map[443/tcp:{} 80/tcp:{}]", cand: "EXPOSE [80/tcp 443/tcp]", want: true},
		{name: "expose other port", ref: "EXPOSE map[443/tcp:{}]", cand: "EXPOSE [443/udp]"},
		{name: "healthcheck", ref: "HEALTHCHECK &{[\"NONE\"] \"0s\" \"0s\" \"0s\" '\\x00'}", cand: "HEALTHCHECK {Test:[NONE]}", want: true},
		{name: "different instruction", ref: "ENV A=1", cand: "ENV A=2"},
		{name: "different keyword", ref: "COPY a /b", cand: "ADD a /b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := legacyCreatedBy(tc.ref, tc.cand); got != tc.want {
				t.Errorf("legacyCreatedBy(%q, %q) = %v, want %v", tc.ref, tc.cand, got, tc.want)
			}
		})
	}
}

func TestCompareTrees(t *testing.T) {
	t.Parallel()
	ref := tree{
		"/a":          {typ: tar.TypeReg, mode: 0o644, size: 1, sum: "aa"},
		"/d":          {typ: tar.TypeDir, mode: 0o755},
		"/l":          {typ: tar.TypeSymlink, mode: 0o777, link: "a"},
		"/dev/null":   {typ: tar.TypeChar, mode: 0o666},
		"/.dockerenv": {typ: tar.TypeReg},
	}
	cand := tree{
		"/a": {typ: tar.TypeReg, mode: 0o4755, size: 1, sum: "aa"},
		"/d": {typ: tar.TypeDir, mode: 0o755, uid: 1000},
		"/l": {typ: tar.TypeSymlink, mode: 0o777, link: "b"},
		"/n": {typ: tar.TypeReg, mode: 0o644},
	}
	got := strings.Join(compareTrees("fs", ref, cand, ignoredPath), "\n")
	want := strings.Join([]string{
		"fs /a: BuildKit file 0644 0:0 1 bytes sha256:aa, ship file 4755 0:0 1 bytes sha256:aa",
		"fs /d: BuildKit dir 0755 0:0, ship dir 0755 1000:0",
		"fs /l: BuildKit symlink 0777 0:0 -> a, ship symlink 0777 0:0 -> b",
		"fs /n: only in ship's image (file 0644 0:0 0 bytes sha256:)",
	}, "\n")
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
