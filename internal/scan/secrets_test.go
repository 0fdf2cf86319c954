package scan

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	secretanalyzer "github.com/aquasecurity/trivy/pkg/fanal/analyzer/secret"
	"github.com/aquasecurity/trivy/pkg/fanal/secret"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"

	"github.com/intesys/ship-action/internal/findings"
	"github.com/intesys/ship-action/internal/testbed"
)

// bigSecretFile writes a text file of about size bytes into dir: lines of
// lowercase words, with secrets put at places that matter to a chunked scan
// (across a chunk's end, inside the overlap two chunks share, across the
// start of a chunk's own bytes, in the last bytes of the file), and returns
// its path with the line of each secret by its text.
func bigSecretFile(t *testing.T, dir string, size int) (string, map[string]int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"package", "version", "depends", "libc6", "description", "amd64", "priority", "optional"}
	var b bytes.Buffer
	for b.Len() < size {
		n := 3 + rng.IntN(12)
		for i := range n {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[rng.IntN(len(words))])
		}
		b.WriteByte('\n')
	}
	content := b.Bytes()
	alnum := "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	token := func(prefix string, n int, chars string) string {
		var s strings.Builder
		s.WriteString(prefix)
		for range n {
			s.WriteByte(chars[rng.IntN(len(chars))])
		}
		return s.String()
	}
	var key strings.Builder
	key.WriteString("-----BEGIN RSA PRIVATE KEY-----\n")
	for range 12 {
		key.WriteString(token("", 64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") + "\n")
	}
	key.WriteString("-----END RSA PRIVATE KEY-----")

	starts := secretChunkStarts(int64(len(content)))
	step := secretChunk - secretOverlap
	places := []int{
		100,                          // first chunk only
		step - 20,                    // across the first chunk's own bytes' end: in the overlap
		secretChunk - 10,             // across the first chunk's end: only in the second
		int(starts[5]) + 300,         // in the overlap of chunks 4 and 5
		int(starts[9]) - 15,          // across the start of chunk 9
		3*secretChunk + 7,            // anywhere
		len(content) - 200,           // in the file's last bytes
		len(content) - secretOverlap, // the last bytes' first line
	}
	lines := map[string]int{}
	for i, at := range places {
		var s string
		switch i % 3 {
		case 0:
			s = token("AKIA", 16, alnum)
		case 1:
			s = token("ghp_", 36, alnum+"abcdefghijklmnopqrstuvwxyz")
		default:
			s = token("ghp_", 36, alnum)
		}
		line := []byte("\ntoken = " + s + "\n")
		copy(content[at:], line)
		lines[s] = 0
	}
	at := int(starts[12]) + secretChunk - secretOverlap/2 - key.Len()/2 // across chunk 12's end
	copy(content[at:], "\n"+key.String()+"\n")
	keyFirst := strings.Split(key.String(), "\n")[1] // where the secret starts
	lines[keyFirst] = 0
	for s := range lines { // once every secret is written: some overwrote line breaks
		lines[s] = bytes.Count(content[:bytes.Index(content, []byte(s))], []byte{'\n'}) + 1
	}

	p := filepath.Join(dir, "big.txt")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, lines
}

func analyseSecrets(t *testing.T, a interface {
	Analyze(context.Context, analyzer.AnalysisInput) (*analyzer.AnalysisResult, error)
}, path string) []ftypes.SecretFinding {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Analyze(context.Background(), analyzer.AnalysisInput{FilePath: "var/lib/big.txt", Info: fi, Content: f})
	if err != nil {
		t.Fatal(err)
	}
	if res == nil {
		return nil
	}
	if len(res.Secrets) != 1 || res.Secrets[0].FilePath != "/var/lib/big.txt" {
		t.Fatalf("secrets: got %d files (%+v), want /var/lib/big.txt", len(res.Secrets), res.Secrets)
	}
	fs := res.Secrets[0].Findings
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].RuleID != fs[j].RuleID {
			return fs[i].RuleID < fs[j].RuleID
		}
		return fs[i].Offset < fs[j].Offset
	})
	return fs
}

// TestSecretAnalyzerParallel: the secrets of a large file, found by chunks
// on several goroutines, are those Trivy's own analyzer finds, field for
// field (lines, offsets, the code around them), and each is at the line it
// was written to.
func TestSecretAnalyzerParallel(t *testing.T) {
	path, lines := bigSecretFile(t, t.TempDir(), 3<<20)
	// As in a scan: Trivy's scanners log through slog's default logger
	// (Trivy's own until then, which is not safe for concurrent use), and
	// making one rewrites Trivy's built-in rules.
	trivyMu.Lock()
	defer trivyMu.Unlock()
	defer routeTrivyLogs(testLogger(t))()

	trivy := secretanalyzer.NewSecretAnalyzer(secret.Scanner{}, "")
	if err := trivy.Init(analyzer.AnalyzerOptions{}); err != nil {
		t.Fatal(err)
	}
	want := analyseSecrets(t, trivy, path)
	if len(want) != len(lines) {
		t.Fatalf("Trivy's analyzer found %d secrets, want the %d written", len(want), len(lines))
	}
	for _, workers := range []int{2, 3, 8} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			a := newSecretAnalyzer(workers)
			if err := a.Init(analyzer.AnalyzerOptions{}); err != nil {
				t.Fatal(err)
			}
			got := analyseSecrets(t, a, path)
			if !reflect.DeepEqual(got, want) {
				for i := range max(len(got), len(want)) {
					if i >= len(got) || i >= len(want) || !reflect.DeepEqual(got[i], want[i]) {
						t.Fatalf("finding %d differs from Trivy's:\n got %+v\nwant %+v", i, at(got, i), at(want, i))
					}
				}
			}
			var gotLines []int
			for _, f := range got {
				gotLines = append(gotLines, f.StartLine)
			}
			if wantLines := sortedLines(lines); !slices.Equal(sortedInts(gotLines), wantLines) {
				t.Errorf("secrets at lines %v, written at %v", sortedInts(gotLines), wantLines)
			}
		})
	}
}

func sortedLines(m map[string]int) []int {
	var ls []int
	for _, l := range m {
		ls = append(ls, l)
	}
	return sortedInts(ls)
}

func sortedInts(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func at(fs []ftypes.SecretFinding, i int) any {
	if i < len(fs) {
		return fs[i]
	}
	return "none"
}

// TestSecretAnalyzerRegistered: Scan uses secretAnalyzer (its debug log
// says so) and reports the secret of a large file at its line.
func TestSecretAnalyzerRegistered(t *testing.T) {
	t.Parallel()
	path, lines := bigSecretFile(t, t.TempDir(), 2<<20)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	layer := testbed.FilesLayer(t, map[string]string{"srv/big.txt": string(content)})
	img := testbed.LinuxImage(t, layer)
	diffID, digest := layerIDs(t, layer)
	origins := []findings.LayerOrigin{{DiffID: diffID, Digest: digest, Instruction: "COPY big.txt /srv/",
		Location: findings.Location{Path: "Dockerfile", Line: 2}, ContextFiles: map[string]string{"srv/big.txt": "big.txt"}}}
	var logs bytes.Buffer // slog's handler serialises the writes; read once Scan has returned
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	res, err := Scan(t.Context(), img, WithCacheDir(cacheWithDB(t, freshMeta())), WithDBRepositories(unreachable),
		WithScanners(ScannerSecret), WithLogger(logger), WithOrigins(origins))
	if err != nil {
		t.Fatal(err)
	}
	if log := logs.String(); !strings.Contains(log, "secrets of a large file scanned in parallel") || !strings.Contains(log, "srv/big.txt") {
		t.Errorf("no debug log of the parallel scan of srv/big.txt")
	}
	var got []int
	for _, f := range res.Findings {
		if f.Location.Path != "big.txt" {
			t.Errorf("%s: location %+v, want big.txt", f.ID, f.Location)
		}
		got = append(got, f.Location.Line)
	}
	if want := sortedLines(lines); !slices.Equal(sortedInts(got), want) {
		t.Errorf("secrets at lines %v, written at %v", sortedInts(got), want)
	}
}
