package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// base is the FROM line most cases start with.
const base = "FROM {{REG}}/base/busybox:1\n"

// diffCases are built by BuildKit and by ship and must give the same image.
func diffCases() []diffCase {
	app := map[string]file{
		"hello.txt":          txt("hello\n"),
		"a.txt":              txt("a\n"),
		"b.txt":              txt("bb\n"),
		"notes.md":           txt("# notes\n"),
		"src/main.go":        txt("package main\n"),
		"src/run.sh":         txtMode("#!/bin/sh\necho run\n", 0o755),
		"src/secret.key":     txtMode("k\n", 0o600),
		"src/sub/deep.txt":   txt("deep\n"),
		"src/sub/other.go":   txt("package sub\n"),
		"src/empty":          dirMode(0o700),
		"setuid/tool":        txtMode("tool\n", 0o4755),
		"setuid/group-tool":  txtMode("gtool\n", 0o2755),
		"setuid/sticky":      dirMode(0o1777),
		"setuid/sticky/keep": txt("keep\n"),
	}
	with := func(extra map[string]file) map[string]file {
		m := map[string]file{}
		for k, v := range app {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	return []diffCase{
		{name: "copy file", files: app, dockerfile: base + "COPY hello.txt /app/hello.txt\n"},
		{name: "copy dir", files: app, dockerfile: base + "COPY src /app/\nCOPY src /srcdir\n"},
		{name: "copy multiple sources", files: app, dockerfile: base + "COPY a.txt b.txt notes.md /dest/\n"},
		{name: "copy globs", files: app, dockerfile: base + "COPY *.txt /globbed/\nCOPY src/*.go src/s?b/*.go /gofiles/\nCOPY [ab].txt /bracket/\n"},
		{name: "copy dot", files: app, dockerfile: base + "COPY . /ctx/\nWORKDIR /w\nCOPY . .\n"},
		{name: "trailing slash rules", files: app, dockerfile: base +
			"COPY a.txt /newdir/\nCOPY a.txt /renamed\nCOPY src /nodir\nCOPY src/sub /etc\nCOPY b.txt /etc\nCOPY hello.txt /tmp/x/y/z/\n"},
		{name: "dest relative to workdir", files: app, dockerfile: base +
			"WORKDIR /work\nCOPY a.txt rel/\nCOPY b.txt .\nCOPY hello.txt ./h.txt\nWORKDIR sub\nCOPY notes.md ../up.md\n"},
		{name: "workdir creation", files: app, dockerfile: base +
			"WORKDIR /a/b/c\nWORKDIR d\nWORKDIR ../e\nWORKDIR /home/app/made\nUSER app\nWORKDIR /owned/by/user\nCOPY a.txt .\n"},
		{name: "chown numeric", files: app, dockerfile: base +
			"COPY --chown=1000:1000 a.txt /a.txt\nCOPY --chown=123 src /src123\nCOPY --chown=5:6 hello.txt /newdir/\n"},
		{name: "chown by name", files: app, dockerfile: base +
			"COPY --chown=app a.txt /a.txt\nCOPY --chown=app:staff src /srcapp\nCOPY --chown=nobody:nogroup b.txt /b.txt\nCOPY --chown=1000:staff hello.txt /h.txt\n"},
		{name: "chown by name other passwd", files: app, dockerfile: "FROM {{REG}}/base/busybox2:1\n" +
			"COPY --chown=app:app a.txt /a.txt\nCOPY --chown=app:staff src /srcapp\n"},
		{name: "chmod", files: app, dockerfile: base +
			"COPY --chmod=0755 a.txt /a.txt\nCOPY --chmod=600 src /src600\nCOPY --chown=app --chmod=440 b.txt /b.txt\n",
			// Current BuildKit (fsutil's copier) gives the directory it creates
			// for a copied directory the --chmod mode, as it does for the
			// directories inside; Docker 20.10's left it 0755.
			legacy: []string{
				"layer 2 /src600: BuildKit dir 0755 0:0, ship dir 0600 0:0",
				"fs /src600: BuildKit dir 0755 0:0, ship dir 0600 0:0",
			}},
		{name: "multi-stage AS", files: app, dockerfile: "FROM {{REG}}/base/busybox:1 AS builder\n" +
			"COPY src /build/src\nCOPY a.txt /build/\n" + base + "COPY --from=builder /build/src /app/src\nCOPY --from=builder /build/a.txt /app/\n"},
		{name: "copy from index", files: app, dockerfile: base + "COPY hello.txt /stage0/\n" +
			"FROM scratch\nCOPY b.txt /stage1/\n" + base + "COPY --from=0 /stage0 /from0\nCOPY --from=1 /stage1/b.txt /from1.txt\n"},
		{name: "target skips stage", files: app, target: "good", dockerfile: "FROM {{REG}}/base/does-not-exist:1 AS broken\nCOPY a.txt /\n" +
			"FROM {{REG}}/base/busybox:1 AS good\nCOPY hello.txt /good/\n" + "FROM broken AS after\nCOPY b.txt /\n"},
		{name: "copy from image", files: app, dockerfile: "FROM scratch\nCOPY --from={{REG}}/base/busybox:1 /etc/passwd /etc/group /etc/\n" +
			"COPY --from={{REG}}/base/busybox2:1 /etc/passwd /other-passwd\n"},
		{name: "dockerignore negation", files: with(map[string]file{
			".dockerignore": txt("*.log\n!keep.log\nsrc/sub\n**/*.md\n!notes.md\nDockerfile\n"),
			"debug.log":     txt("debug\n"), "keep.log": txt("keep\n"), "deep/x.log": txt("x\n"), "deep/readme.md": txt("r\n"),
		}), dockerfile: base + "COPY . /app/\n"},
		{name: "dockerfile specific dockerignore", path: "build/app.Dockerfile", files: with(map[string]file{
			".dockerignore":                     txt("*\n"),
			"build/app.Dockerfile.dockerignore": txt("src\n*.md\n"),
		}), dockerfile: base + "COPY . /app/\n"},
		{name: "symlinks in context", files: with(map[string]file{
			"link-to-a":           symlink("a.txt"),
			"dir-link":            symlink("src"),
			"src/rel-link":        symlink("../hello.txt"),
			"links/abs-link":      symlink("/etc/passwd"),
			"links/dangling-link": symlink("nowhere"),
			"links/sub-link":      symlink("../src/sub"),
		}), dockerfile: base + "COPY link-to-a /followed.txt\nCOPY dir-link /via-dir-link\nCOPY src /src\nCOPY links /links\nCOPY links/sub-link/deep.txt /through-link.txt\n"},
		{name: "add local tar", files: with(map[string]file{
			"plain.tar":   {content: tarOf(map[string]file{"top.txt": txt("top\n"), "d/in.txt": txtMode("in\n", 0o640), "d": dirMode(0o750), "d/l": symlink("in.txt")}, false)},
			"comp.tar.gz": {content: tarOf(map[string]file{"z/z.txt": txt("zz\n")}, true)},
		}), dockerfile: base + "ADD plain.tar /plain/\nADD comp.tar.gz /comp\nADD a.txt /added/\nCOPY plain.tar /copied/\n"},
		{name: "add url", files: app, dockerfile: base + "ADD {{HTTP}}/remote.txt /dl/\nADD {{HTTP}}/archive.tar /dl/archive.tar\nADD --chown=app {{HTTP}}/remote.txt /dl/owned.txt\n"},
		{name: "env forms and substitution", files: with(map[string]file{"one.txt": txt("1\n")}), dockerfile: base +
			"ENV A=one B=\"two words\" C='single $A'\nENV D three four\nENV E=${A}-x F=$B G=${UNSET:-dflt} H=${A:+set}\n" +
			"ENV PATH=/custom/bin:$PATH\nENV A=again\nCOPY ${A:+one}.txt /$A/\nWORKDIR /$A/$D\nLABEL from.env=$F\n"},
		{name: "arg before from and build-arg", files: app, buildArgs: []string{"NAME=override", "OTHER=given", "TAG=1"},
			dockerfile: "ARG TAG=nope\nARG DIR=/from-global\nFROM {{REG}}/base/busybox:${TAG}\nARG DIR\nARG NAME=default\nARG OTHER\nARG UNUSED=u\n" +
				"ENV N=$NAME O=$OTHER\nCOPY a.txt $DIR/\nLABEL name=$NAME\nWORKDIR /w/$NAME\n"},
		{name: "labels", files: app, dockerfile: base +
			"LABEL a=b \"c d\"=\"e f\"\nLABEL org.example.testbed.base=overridden multi=\"line one \\\n line two\"\nLABEL empty=\"\"\n"},
		{name: "labels inherited", files: app, dockerfile: base + "LABEL added=yes\n"},
		{name: "user", files: app, dockerfile: base + "USER app\nCOPY a.txt /a.txt\nUSER 1000:1000\n" + base + "USER nobody:nogroup\n"},
		{name: "expose and volume", files: app, dockerfile: base +
			"EXPOSE 80 443/tcp\nEXPOSE 53/udp 8080\nVOLUME /data\nVOLUME [\"/logs\", \"/cache\"]\nVOLUME /a /b\n"},
		{name: "entrypoint cmd exec", files: app, dockerfile: base + "ENTRYPOINT [\"/bin/echo\", \"hi\"]\nCMD [\"world\"]\n"},
		{name: "entrypoint cmd shell", files: app, dockerfile: base + "ENTRYPOINT echo hi\nCMD world \"quoted arg\"\n"},
		{name: "cmd resets with entrypoint", files: app, dockerfile: base + "CMD [\"sh\", \"-c\", \"x\"]\nENTRYPOINT [\"/bin/true\"]\n"},
		{name: "shell and shell-form cmd", files: app, dockerfile: base +
			"SHELL [\"/bin/sh\", \"-ec\"]\nCMD echo hi\nENTRYPOINT exec sleep 1\n"},
		{name: "stopsignal", files: app, dockerfile: base + "STOPSIGNAL SIGTERM\nSTOPSIGNAL 9\n"},
		{name: "healthcheck", files: app, dockerfile: base +
			"HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=2 CMD wget -q localhost || exit 1\n" +
			"FROM scratch\nHEALTHCHECK CMD [\"/bin/check\", \"--fast\"]\n" + base + "HEALTHCHECK NONE\n"},
		{name: "onbuild triggers of base", files: app, dockerfile: "FROM {{REG}}/base/onbuild:1\nCOPY a.txt ./renamed.txt\n"},
		{name: "onbuild recorded", files: app, dockerfile: base + "ONBUILD COPY a.txt /later/\nONBUILD LABEL later=yes\nONBUILD ENV L=1\n"},
		{name: "maintainer", files: app, dockerfile: base + "MAINTAINER Jane Doe <jane@example.com>\n"},
		{name: "empty dir copy", files: with(map[string]file{"empty": dirMode(0o755), "empty2": dirMode(0o711)}),
			dockerfile: base + "COPY empty /empty\nCOPY empty2 /e2/\nCOPY src/empty /src-empty\n"},
		{name: "spaces in names", files: with(map[string]file{"my file.txt": txt("spaces\n"), "dir with space/in it.txt": txt("x\n")}),
			dockerfile: base + "COPY [\"my file.txt\", \"/dest dir/\"]\nCOPY [\"dir with space\", \"/other dir\"]\nCOPY my*.txt /glob/\n"},
		{name: "special modes", files: app, dockerfile: base + "COPY setuid /setuid\nCOPY setuid/tool /bin/\n"},
		{name: "from scratch", files: app, dockerfile: "FROM scratch\nCOPY hello.txt /\nCOPY src /src\nENV X=1\nCMD [\"/x\"]\n"},
		{name: "copy into existing base dirs", files: app, dockerfile: base + "COPY a.txt /etc/\nCOPY hello.txt /tmp/\nCOPY src/sub /root/\n"},
		{name: "copy from stage with chown", files: app, dockerfile: "FROM {{REG}}/base/busybox:1 AS b\nCOPY src /s\n" + base +
			"COPY --from=b --chown=app:app /s /app\nCOPY --from=b /etc/passwd /passwd-copy\n"},
		{name: "from by digest", files: app, dockerfile: "FROM {{REG}}/base/busybox@{{BUSYBOX_DIGEST}}\nCOPY a.txt /\n" +
			"FROM {{REG}}/base/busybox:1@{{BUSYBOX_DIGEST}}\nCOPY b.txt /\n"},
		{name: "platform args", files: app, dockerfile: "FROM --platform=$BUILDPLATFORM {{REG}}/base/busybox:1 AS b\n" +
			"ARG TARGETARCH\nARG BUILDPLATFORM\nENV T=$TARGETARCH B=$BUILDPLATFORM\nCOPY a.txt /$TARGETARCH/\n" +
			"FROM --platform=linux/amd64 {{REG}}/base/busybox:1\nARG TARGETOS\nARG TARGETPLATFORM\n" +
			"LABEL os=$TARGETOS p=$TARGETPLATFORM\nCOPY --from=b /amd64 /from-b\n"},
		{name: "escape directive", files: app, dockerfile: "# escape=`\n" + base +
			"ENV A=`$notvar B=two `\n    C=three\nLABEL l=\"$A $C\"\nCOPY [\"a.txt\", \"/dir\\\\with/\"]\n"},
		{name: "hardlinks in context", files: with(map[string]file{"hl/one": txt("same inode\n"), "hl/two": hardlink("hl/one"), "hl/sub/three": hardlink("hl/one")}),
			dockerfile: base + "COPY hl /hl\nCOPY hl/one hl/two /pair/\n"},
		{name: "copy through base symlinks", files: app, dockerfile: "FROM {{REG}}/base/links:1\n" +
			"COPY a.txt /lib/x/\nCOPY b.txt /var/run/b.txt\nCOPY hello.txt /lib/\nCOPY src/sub /srv/sub\nCOPY notes.md /opt/\n"},
		{name: "chown and workdir with variables", files: app, dockerfile: base +
			"ARG U=app\nENV D=/data\nWORKDIR $D/sub\nWORKDIR ${D}2\nCOPY --chown=$U:staff a.txt ./a\nUSER $U\n"},
		{name: "stage from stage", files: app, dockerfile: "FROM {{REG}}/base/busybox:1 AS one\nENV ONE=1\nWORKDIR /one\nCOPY a.txt .\nUSER app\n" +
			"FROM one AS two\nENV TWO=2\nCOPY b.txt .\n"},
	}
}

func TestDifferential(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	for _, c := range diffCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			report(t, "BuildKit and ship", e.runDiff(ctx, t, c, buildWithDocker, buildWithShip), c.legacy...)
		})
	}
}

// TestHarnessSelfCheck checks the harness itself: BuildKit compared with
// BuildKit gives no difference, and known differences are found.
func TestHarnessSelfCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	byName := map[string]diffCase{}
	for _, c := range diffCases() {
		byName[c.name] = c
	}
	for _, n := range []string{"copy dir", "chown by name", "symlinks in context", "healthcheck", "env forms and substitution"} {
		t.Run("same/"+n, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			cmp := e.runDiff(ctx, t, byName[n], buildWithDocker, buildWithDocker)
			if len(cmp.accepted) > 0 {
				t.Errorf("BuildKit differs from itself in accepted ways: %q", cmp.accepted)
			}
			report(t, "BuildKit and itself", cmp)
		})
	}
	t.Run("different", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		a := diffCase{name: "self a", files: map[string]file{"f": txt("one\n"), "g": txt("g\n")},
			dockerfile: base + "ENV A=1 B=2\nCOPY f g /x/\nUSER app\n"}
		b := diffCase{name: "self b", files: map[string]file{"f": txtMode("two\n", 0o755), "h": txt("h\n")},
			dockerfile: base + "ENV B=2 A=1\nCOPY --chown=1000 f h /x/\n"}
		var tags []string
		for _, c := range []diffCase{a, b} {
			dir, df := e.prepare(t, c)
			tag := e.reg.Ref("self/" + tagName(c.name) + ":1")
			if err := buildWithDocker(ctx, t, e, dir, df, tag, c); err != nil {
				t.Fatal(err)
			}
			tags = append(tags, tag)
		}
		diffs := e.compare(ctx, t, tags[0], tags[1]).diffs
		want := []string{
			"config Env:", "config User:", "history: BuildKit has 5 entries, ship 4",
			"fs /x: BuildKit dir 0755 0:0, ship dir 0755 1000:1000",
			"fs /x/f: BuildKit file 0644 0:0 4 bytes sha256:2c8b08da5ce6, ship file 0755 1000:1000 4 bytes", "fs /x/g: only in BuildKit", "fs /x/h: only in ship",
		}
		got := strings.Join(diffs, "\n")
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("differences lack %q; got:\n%s", w, got)
			}
		}
	})
}
