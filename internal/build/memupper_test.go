package build

import (
	"maps"
	"strings"
	"testing"

	"github.com/intesys/ship-action/internal/testbed"
)

// TestMemoryUpper: RUN's upper directories in a tmpfs give the same image
// as on the disk, with RUN, COPY --from between RUNs, a stage built on and
// copied from, and leave no mount behind.
func TestMemoryUpper(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	df := `FROM busybox AS a
RUN mkdir -p /d/sub && echo a > /d/a && ln -s a /d/l && echo s > /d/sub/s && rm /bin/ls
RUN echo b >> /d/a && rm /d/l && mkdir /d/l && rm -r /d/sub && chmod 700 /d
FROM a AS b
RUN echo on-a > /on-a && rm /d/a
FROM busybox
COPY --from=a /d /e
RUN echo c > /e/c && rm /bin/cat && ln /e/c /e/hard
COPY --from=b /on-a /on-a
RUN echo after-copy >> /on-a && mkdir /e/sub && echo x > /e/sub/x
`
	img := testbed.BusyboxImage(t)
	inMemory, logs := flatBuild(t, df, img, withMemoryUpper(64<<20))
	if n := strings.Count(logs, "changes_in_memory=true"); n != 5 {
		t.Fatalf("%d RUNs with their changes in memory, want 5; log:\n%s", n, logs)
	}
	onDisk, logs := flatBuild(t, df, img, withMemoryUpper(-1))
	if strings.Contains(logs, "changes_in_memory=true") {
		t.Fatalf("RUN's changes in memory with withMemoryUpper(-1); log:\n%s", logs)
	}
	if !maps.Equal(inMemory, onDisk) {
		t.Errorf("images differ:\nin memory: %v\non disk:   %v", inMemory, onDisk)
	}
	for path, want := range map[string]string{
		"e/a":     "file a\nb 00644 0:0",
		"e/l":     "dir 00755 0:0",
		"e/c":     "file c 00644 0:0",
		"on-a":    "file on-a\nafter-copy 00644 0:0",
		"e/sub/x": "file x 00644 0:0",
	} {
		if got := inMemory[path]; got != want {
			t.Errorf("/%s = %q, want %q", path, got, want)
		}
	}
	for _, gone := range []string{"bin/cat", "e/sub/s"} {
		if _, ok := inMemory[gone]; ok {
			t.Errorf("/%s deleted by RUN is in the image", gone)
		}
	}
}

// TestMemoryUpperOutgrown: a RUN that writes more than half of the tmpfs
// for its changes, which the memory left cannot grow, is killed and runs
// again from the start with its changes on the disk, as do the RUNs after
// it; the image is whole.
func TestMemoryUpperOutgrown(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	img := testbed.BusyboxImage(t)
	const size = 8 << 20
	df := "FROM busybox\n" +
		"RUN echo first >> /log\n" +
		// 6 MB: more than half of the tmpfs, less than all of it.
		"RUN echo second >> /log && yes ship-action | head -c 6000000 > /big && sleep 1 && echo done >> /log\n" +
		"RUN echo third >> /log\n"
	cache := t.TempDir()
	// Too little memory left to grow the tmpfs.
	res, logs, err := cachedBuildLogged(t, cache, df, img, WithoutRootFSCache(), withMemoryUpper(size), withAvailableMemory(size))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs, "running it again with its changes on the disk"); n != 1 {
		t.Errorf("%d RUNs ran again on the disk, want 1; log:\n%s", n, logs)
	}
	if n := strings.Count(logs, "changes_in_memory=true"); n != 2 {
		t.Errorf("%d RUNs with their changes in memory, want 2 (the first and the one killed); log:\n%s", n, logs)
	}
	files := flatten(t, res.Image)
	// The killed attempt's "second" is gone with its upper directory.
	if got, want := files["log"], "file first\nsecond\ndone\nthird 00644 0:0"; got != want {
		t.Errorf("/log = %q, want %q", got, want)
	}
	big := files["big"]
	if want := "ship-action"; !strings.HasPrefix(big, "file "+want) || len(big) < 6000000 {
		t.Errorf("/big: %d bytes of summary, want the 6 MB file", len(big))
	}
	if m := mountsUnder(t, cache); len(m) > 0 {
		t.Errorf("mounts left after the build: %v", m)
	}
}

// TestMemoryUpperGrows: a RUN that writes more than half of the tmpfs for
// its changes, with memory left, gets a larger tmpfs and goes on: it runs
// once, its changes in memory.
func TestMemoryUpperGrows(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	const size = 8 << 20
	df := "FROM busybox\n" +
		"RUN echo once >> /log && yes ship-action | head -c 6000000 > /big && sleep 1 && echo done >> /log\n" +
		"RUN echo after >> /log\n"
	files, logs := flatBuild(t, df, testbed.BusyboxImage(t), withMemoryUpper(size), withAvailableMemory(1<<30))
	if !strings.Contains(logs, "memory for RUN's changes grown") {
		t.Errorf("tmpfs not grown; log:\n%s", logs)
	}
	if strings.Contains(logs, "running it again") {
		t.Errorf("RUN ran again; log:\n%s", logs)
	}
	// The next RUN finds more than a quarter of the grown tmpfs used: disk.
	if n := strings.Count(logs, "changes_in_memory=true"); n != 1 {
		t.Errorf("%d RUNs with their changes in memory, want 1; log:\n%s", n, logs)
	}
	if got, want := files["log"], "file once\ndone\nafter 00644 0:0"; got != want {
		t.Errorf("/log = %q, want %q", got, want)
	}
	if big := files["big"]; !strings.HasPrefix(big, "file ship-action") || len(big) < 6000000 {
		t.Errorf("/big: %d bytes of summary, want the 6 MB file", len(big))
	}
}
