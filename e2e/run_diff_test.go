package e2e

import (
	"context"
	"regexp"
	"testing"
	"time"
)

// runDiffCases are RUN cases built by BuildKit and by ship that must give
// the same image: config, history, the entries of every layer and the
// flattened file system (ignoredPath lists what docker create adds to a
// container; the sandbox's /proc, /dev, /sys, /etc/hosts and
// /etc/resolv.conf never reach a layer on either side).
func runDiffCases() []diffCase {
	app := map[string]file{
		"a.txt":      txt("a\n"),
		"src/run.sh": txtMode("#!/bin/sh\necho from script > /from-script\n", 0o755),
		"src/data":   txt("data\n"),
	}
	return []diffCase{
		{name: "run create files", files: app, dockerfile: base +
			"RUN echo hi > /hi.txt && mkdir -p /a/b && echo x > /a/b/c && mkdir /empty\n"},
		{name: "run modify and delete", files: app, dockerfile: base +
			"RUN echo extra >> /etc/passwd && rm /etc/group && rm -rf /home/app\n"},
		{name: "run chmod chown", files: app, dockerfile: base +
			"RUN touch /f && chown 1000:50 /f && chmod 4750 /f && chmod 700 /home && chown app:app /tmp\n"},
		{name: "run user by name", files: app, dockerfile: base +
			"USER app\nRUN id > /tmp/id && echo \"$HOME\" > /tmp/home && touch /home/app/mine\n"},
		{name: "run user by ids", files: app, dockerfile: base +
			"USER 1234:50\nRUN id > /tmp/id-pair\nUSER 4321\nRUN id > /tmp/id-num && echo \"$HOME\" > /tmp/home\nUSER nobody\nRUN id > /tmp/id-nobody\n"},
		{name: "run workdir", files: app, dockerfile: base +
			"WORKDIR /w/x\nRUN pwd > here && mkdir sub && echo s > sub/s\n"},
		{name: "run env and build args", files: app, buildArgs: []string{"B=from-flag"}, dockerfile: base +
			"ARG A=one\nARG B\nARG C\nENV E=env\nRUN echo \"$A|$B|$C|$E\" > /vars && env | grep -v -e ^OTEL_ -e ^TRACEPARENT= | sort > /env\nRUN echo again > /again\n"},
		{name: "run shell change", files: app, dockerfile: base +
			"SHELL [\"/bin/sh\", \"-xc\"]\nRUN echo $0 > /shell\n"},
		{name: "run exec form", files: app, dockerfile: base +
			"RUN [\"/bin/sh\", \"-c\", \"echo exec > /exec\"]\nRUN [\"touch\", \"/touched\"]\n"},
		{name: "run dir to symlink and back", files: app, dockerfile: base +
			"RUN mkdir -p /x/y && echo in > /x/y/f\nRUN rm -rf /x && ln -s /tmp /x\nRUN rm /x && mkdir /x && echo again > /x/g\n"},
		{name: "run file to dir", files: app, dockerfile: base +
			"RUN echo f > /thing\nRUN rm /thing && mkdir /thing && echo inner > /thing/inner\nRUN rm -rf /thing && echo file > /thing\n"},
		{name: "run hardlinks", files: app, dockerfile: base +
			"RUN echo a > /h1 && ln /h1 /h2 && mkdir /hd && ln /h1 /hd/h3\n"},
		{name: "run after copy", files: app, dockerfile: base +
			"COPY a.txt /data/\nCOPY src /src/\nRUN cat /data/a.txt > /data/b && rm /data/a.txt && /src/run.sh\n"},
		{name: "run then copy", files: app, dockerfile: base +
			"RUN mkdir /data && echo run > /data/run\nCOPY a.txt /data/\nRUN ls /data > /listing\n"},
		{name: "run multi-stage", files: app, dockerfile: "FROM {{REG}}/base/busybox:1 AS build\nRUN mkdir /out && echo built > /out/bin\n" +
			base + "COPY --from=build /out /opt/out\nRUN cat /opt/out/bin > /again\n"},
		{name: "run from stage", files: app, dockerfile: "FROM {{REG}}/base/busybox:1 AS one\nARG V=1\nRUN echo 1 > /one\n" +
			"FROM one\nRUN echo \"2 $V\" > /two\n",
			// Current BuildKit lists the ARGs of the base stage in the RUN
			// history of a stage built on it; Docker 20.10's frontend did not.
			legacy: []string{`history[4]: BuildKit "RUN /bin/sh -c echo \"2 $V\" > /two # buildkit" empty_layer=false comment="buildkit.dockerfile.v0", ship "RUN |1 V=1 /bin/sh -c echo \"2 $V\" > /two # buildkit" empty_layer=false comment="buildkit.dockerfile.v0"`}},
		{name: "run nothing changed", files: app, dockerfile: base + "RUN true\nRUN cat /etc/passwd > /dev/null\n"},
		{name: "run touch existing", files: app, dockerfile: base + "RUN touch /etc/passwd && chmod 600 /etc/group\n"},
		{name: "run delete and recreate dir", files: app, dockerfile: base +
			"RUN mkdir -p /d/keep && echo 1 > /d/one && echo 2 > /d/keep/two\nRUN rm -rf /d && mkdir -p /d/new && echo n > /d/new/f\n"},
		{name: "run cache mount", files: app, dockerfile: base +
			"RUN --mount=type=cache,target=/var/cache/x echo cached > /var/cache/x/f && echo ok > /ok\n",
			legacy: mountStubs("layer 1", "/var", "/var/cache", "/var/cache/x")},
		{name: "run bind mount", files: app, dockerfile: base +
			"RUN --mount=type=bind,source=a.txt,target=/m/a.txt cat /m/a.txt > /copied\n" +
			"RUN --mount=type=bind,source=src,target=/mnt/src cp /mnt/src/data /data-copy\n",
			legacy: append(mountStubs("layer 1", "/m"), mountStubs("layer 2", "/mnt", "/mnt/src")...)},
		{name: "run symlinks", files: app, dockerfile: base +
			"RUN ln -s /etc/passwd /pw && ln -s rel /dangling && mkdir /sd && ln -s ../etc /sd/up\n"},
		{name: "run special modes", files: app, dockerfile: base +
			"RUN mkdir -m 1777 /sticky && mkdir -m 2775 /sgid && touch /suid && chmod 4755 /suid && touch /sgid/inherits\n"},
		{name: "run proxy build arg", files: app, buildArgs: []string{"HTTP_PROXY=http://proxy.invalid:3128"}, dockerfile: base +
			"RUN echo \"proxy=$HTTP_PROXY\" > /proxy\n"},
		{name: "run arg overridden by env", files: app, dockerfile: base +
			"ARG X=from-arg\nENV X=from-env\nRUN echo \"$X\" > /x\n"},
		{name: "run user without home", files: app, dockerfile: base +
			"USER nobody\nRUN echo \"$HOME\" > /tmp/h && id -u > /tmp/u\n"},
		{name: "run big file and rename", files: app, dockerfile: base +
			"RUN dd if=/dev/zero of=/big bs=1024 count=300 2>/dev/null && mv /etc/passwd /etc/passwd.old && cp /etc/passwd.old /etc/passwd\n"},
		{name: "run chown recursive", files: app, dockerfile: base +
			"RUN mkdir -p /o/p && touch /o/p/f && chown -R app:staff /o && touch /o/root-owned\n"},
		{name: "run user added by run", files: app, dockerfile: base +
			"RUN echo 'new:x:3000:3000::/home/new:/bin/sh' >> /etc/passwd && echo 'new:x:3000:' >> /etc/group && mkdir -p /home/new\n" +
			"COPY --chown=new:new a.txt /a.txt\nUSER new\nRUN id > /tmp/id-new && echo \"$HOME\" > /tmp/home-new\n"},
		{name: "run cmd and entrypoint after run", files: app, dockerfile: base +
			"RUN echo built > /built\nENTRYPOINT [\"cat\"]\nCMD [\"/built\"]\n"},
	}
}

// mountStubs are the differences a RUN --mount gives with Docker 20.10:
// its layer keeps the mount target (and the parents it created) as empty
// directories; current BuildKit removes them, as ship does.
func mountStubs(layer string, dirs ...string) []string {
	var out []string
	for _, d := range dirs {
		out = append(out, layer+" "+d+": only in BuildKit's image (dir 0755 0:0)", "fs "+d+": only in BuildKit's image (dir 0755 0:0)")
	}
	return out
}

// runLegacy matches the differences between Docker 20.10's BuildKit
// (graphdriver snapshots, an older runc) and current BuildKit v0.32, which
// ship follows (TestRunDifferentialCurrentBuildKit accepts none of them):
var runLegacy = []*regexp.Regexp{
	// its runc leaves /etc touched by the /etc/hosts and /etc/resolv.conf
	// mount stubs, so every RUN layer has /etc;
	regexp.MustCompile(`^layer \d+ /etc: only in BuildKit's image \(dir 0755 0:0\)$`),
	// its whiteouts are mode 0600 files (ship and current BuildKit: 0000);
	regexp.MustCompile(`^layer \d+ \S*/\.wh\.[^/ ]+: BuildKit file 0600 0:0 0 bytes sha256:e3b0c44298fc, ship file 0000 0:0 0 bytes sha256:e3b0c44298fc$`),
	// a directory deleted and created again is an opaque directory there,
	// and explicit whiteouts of the old children in current BuildKit;
	regexp.MustCompile(`^layer \d+ \S*/\.wh\.\.wh\.\.opq: only in BuildKit's image \(file 0755 0:0 0 bytes sha256:e3b0c44298fc\)$`),
	regexp.MustCompile(`^layer \d+ \S*/\.wh\.[^/ ]+: only in ship's image \(file 0000 0:0 0 bytes sha256:e3b0c44298fc\)$`),
	// its runc does not add the primary group to the supplementary groups
	// (the output of id differs: "groups=" is missing or shorter).
	regexp.MustCompile(`^(layer \d+|fs) /tmp/id[-a-z]*: BuildKit file 0644 \d+:\d+ \d+ bytes sha256:[0-9a-f]+, ship file 0644 \d+:\d+ \d+ bytes sha256:[0-9a-f]+$`),
}

// acceptRunLegacy moves the differences runLegacy matches to accepted.
func acceptRunLegacy(c comparison) comparison {
	var out comparison
	out.accepted = c.accepted
	for _, d := range c.diffs {
		legacy := false
		for _, re := range runLegacy {
			if re.MatchString(d) {
				legacy = true
				break
			}
		}
		if legacy {
			out.accepted = append(out.accepted, d)
		} else {
			out.diffs = append(out.diffs, d)
		}
	}
	return out
}

// runCurrentCases use what Docker 20.10's frontend rejects.
func runCurrentCases() []diffCase {
	return []diffCase{
		{name: "run heredocs", dockerfile: base +
			"RUN <<EOF\necho one > /one\necho two > /two\nEOF\n" +
			"RUN <<EOF\n#!/bin/sh\necho $0 > /script\nEOF\n" +
			"RUN <<-EOT\n\techo tab > /tab\n\tEOT\n" +
			"RUN cat <<A > /a && cat <<B > /b\nalpha\nA\nbeta\nB\n"},
		{name: "run network none", dockerfile: base + "RUN --network=none echo ok > /ok\n"},
	}
}

// TestDifferentialRun compares RUN with Docker's BuildKit.
func TestDifferentialRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	for _, c := range runDiffCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			report(t, "BuildKit and ship", acceptRunLegacy(e.runDiff(ctx, t, c, buildWithDocker, buildWithShip)), c.legacy...)
		})
	}
}

// TestRunDifferentialCurrentBuildKit compares RUN with a current BuildKit
// daemon, heredocs and --network included.
func TestRunDifferentialCurrentBuildKit(t *testing.T) {
	t.Parallel()
	ref := currentBuildKit(t)
	e := newEnv(t, false)
	for _, c := range append(runDiffCases(), runCurrentCases()...) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			c.name = "current " + c.name
			report(t, "current BuildKit and ship", e.runDiff(ctx, t, c, ref, buildWithShip))
		})
	}
}

// TestRunImageRuns runs an image whose content a RUN made with docker run.
func TestRunImageRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := diffCase{name: "run image runs", dockerfile: base +
		"USER app\nWORKDIR /home/app\nRUN printf '#!/bin/sh\\necho \"made by RUN as $(id -un) in $(pwd)\"\\n' > hello && chmod 755 hello\n" +
		"CMD [\"./hello\"]\n"}
	dir, dockerfile := e.prepare(t, c)
	tag := e.reg.Ref("run/" + tagName(c.name) + ":1")
	if err := buildWithShip(ctx, t, e, dir, dockerfile, tag, c); err != nil {
		t.Fatal(err)
	}
	if err := e.docker.Pull(ctx, tag); err != nil {
		t.Fatal(err)
	}
	out, err := e.docker.Run(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if want := "made by RUN as app in /home/app\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}
