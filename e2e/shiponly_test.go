package e2e

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// want is an expected path in an image built by ship.
type want struct {
	typ      byte
	mode     int64
	uid, gid int
	content  string
	link     string
}

func (w want) entry() entry {
	en := entry{typ: w.typ, mode: w.mode, uid: w.uid, gid: w.gid, link: w.link}
	if w.typ == tar.TypeReg {
		sum := sha256.Sum256([]byte(w.content))
		en.size, en.sum = int64(len(w.content)), hex.EncodeToString(sum[:])
	}
	return en
}

func wfile(content string, mode int64) want {
	return want{typ: tar.TypeReg, mode: mode, content: content}
}
func wdir(mode int64) want { return want{typ: tar.TypeDir, mode: mode} }

// TestShipOnly covers what Docker 20.10's frontend rejects (heredocs,
// COPY --link, --exclude, ADD --checksum): ship's image must hold exactly
// the expected entries. A current BuildKit daemon could be the reference
// for these later.
func TestShipOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	remoteSum := sha256.Sum256([]byte(httpFiles()["remote.txt"]))
	ctxFiles := map[string]file{
		"a.txt":            txt("a\n"),
		"debug.log":        txt("log\n"),
		"src/main.go":      txt("package main\n"),
		"src/trace.log":    txt("trace\n"),
		"src/sub/deep.txt": txt("deep\n"),
		"src/run.sh":       txtMode("#!/bin/sh\n", 0o755),
	}
	tests := []struct {
		name       string
		dockerfile string
		want       map[string]want
		absent     []string
		layers     int // layers added on top of the base; -1: don't check
	}{
		{
			name: "heredocs",
			dockerfile: base + "ARG NAME=world\n" +
				"COPY <<EOF /app/greeting.txt\nhello $NAME\nEOF\n" +
				"COPY <<\"EOT\" /app/raw.txt\nraw $NAME\nEOT\n" +
				"COPY --chmod=0755 <<EOF /app/run.sh\n#!/bin/sh\necho hi\nEOF\n" +
				"COPY <<-EOF /app/tabs.txt\n\tindented\n\tEOF\n" +
				"COPY --chown=app:app <<one.txt <<two.txt /multi/\n1\none.txt\n2\ntwo.txt\n",
			want: map[string]want{
				"/app":              wdir(0o755),
				"/app/greeting.txt": wfile("hello world\n", 0o644),
				"/app/raw.txt":      wfile("raw $NAME\n", 0o644),
				"/app/run.sh":       wfile("#!/bin/sh\necho hi\n", 0o755),
				"/app/tabs.txt":     wfile("indented\n", 0o644),
				"/multi/one.txt":    {typ: tar.TypeReg, mode: 0o644, uid: 1000, gid: 1000, content: "1\n"},
				"/multi/two.txt":    {typ: tar.TypeReg, mode: 0o644, uid: 1000, gid: 1000, content: "2\n"},
			},
			layers: 5,
		},
		{
			name:       "copy link",
			dockerfile: base + "COPY --link a.txt /linked/\nCOPY --link src /linked-src\nCOPY --link --chown=1000:1000 a.txt /new/dir/a.txt\n",
			want: map[string]want{
				"/linked":                  wdir(0o755),
				"/linked/a.txt":            wfile("a\n", 0o644),
				"/linked-src/main.go":      wfile("package main\n", 0o644),
				"/linked-src/run.sh":       wfile("#!/bin/sh\n", 0o755),
				"/linked-src/sub/deep.txt": wfile("deep\n", 0o644),
				"/new/dir/a.txt":           {typ: tar.TypeReg, mode: 0o644, uid: 1000, gid: 1000, content: "a\n"},
			},
			layers: 3,
		},
		{
			name:       "copy exclude",
			dockerfile: base + "COPY --exclude=*.log --exclude=src/sub . /app/\nADD --exclude=**/*.go src /add/\n",
			want: map[string]want{
				"/app/a.txt":        wfile("a\n", 0o644),
				"/app/src/main.go":  wfile("package main\n", 0o644),
				"/app/src/run.sh":   wfile("#!/bin/sh\n", 0o755),
				"/add/run.sh":       wfile("#!/bin/sh\n", 0o755),
				"/add/sub/deep.txt": wfile("deep\n", 0o644),
			},
			absent: []string{"/app/debug.log", "/app/src/sub", "/add/main.go"},
			layers: 2,
		},
		{
			name:       "add checksum",
			dockerfile: base + "ADD --checksum=sha256:{{SUM}} {{HTTP}}/remote.txt /dl/remote.txt\n",
			want: map[string]want{
				"/dl":            wdir(0o755),
				"/dl/remote.txt": wfile(httpFiles()["remote.txt"], 0o600),
			},
			layers: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			df := strings.ReplaceAll(tc.dockerfile, "{{SUM}}", hex.EncodeToString(remoteSum[:]))
			c := diffCase{name: tc.name, files: ctxFiles, dockerfile: df}
			dir, dockerfile := e.prepare(t, c)
			tag := e.reg.Ref("shiponly/" + tagName(tc.name) + ":1")
			if err := buildWithShip(ctx, t, e, dir, dockerfile, tag, c); err != nil {
				t.Fatal(err)
			}
			got := e.imageTree(t, tag)
			for p, w := range tc.want {
				g, ok := got[p]
				switch {
				case !ok:
					t.Errorf("%s: missing", p)
				case g != w.entry():
					t.Errorf("%s: got %s, want %s", p, g, w.entry())
				}
			}
			for _, p := range tc.absent {
				if g, ok := got[p]; ok {
					t.Errorf("%s: present (%s), want absent", p, g)
				}
			}
			baseCfg := e.configFile(t, e.reg.Ref(baseBusybox))
			cf := e.configFile(t, tag)
			if n := len(cf.RootFS.DiffIDs) - len(baseCfg.RootFS.DiffIDs); tc.layers >= 0 && n != tc.layers {
				t.Errorf("%d layers added, want %d", n, tc.layers)
			}
		})
	}
}
