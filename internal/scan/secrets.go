package scan

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"

	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	secretanalyzer "github.com/aquasecurity/trivy/pkg/fanal/analyzer/secret"
	"github.com/aquasecurity/trivy/pkg/fanal/secret"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	"github.com/aquasecurity/trivy/pkg/fanal/utils"
	"github.com/aquasecurity/trivy/pkg/log"
	"golang.org/x/sync/errgroup"
)

// Trivy finds analyzers in a registry of its own, filled by the init
// functions of its analyzer packages; this replaces its secret analyzer with
// secretAnalyzer, which finds the same secrets in large files on every core.
// It keeps the type (so Trivy still turns it off for base layers and when
// the secret scanner is off) and the version (so cached results stay valid
// both ways: the findings are the same).
func init() {
	analyzer.DeregisterAnalyzer(analyzer.TypeSecret)
	analyzer.RegisterAnalyzer(newSecretAnalyzer(runtime.GOMAXPROCS(0)))
}

// Trivy's secret scanner reads a file in chunks of secretChunk bytes, each
// starting secretOverlap bytes before the end of the one before, so that a
// secret across a boundary is found whole in one of them.
const (
	secretChunk   = secret.DefaultBufferSize
	secretOverlap = secret.DefaultOverlap
	// secretParallelMin is the size from which a file's chunks are scanned
	// by several goroutines; smaller files go to Trivy's analyzer as they are.
	secretParallelMin = 1 << 20
	// secretTaskChunks is how many consecutive chunks one goroutine takes at
	// a time (1 MiB).
	secretTaskChunks = 16
)

// secretAnalyzer is Trivy's secret analyzer (pkg/fanal/analyzer/secret),
// except that a large text file is scanned by several goroutines at once:
// Trivy scans a file's chunks one after another in one goroutine, and the
// secret scan of one big file (Debian's 50 MB apt package list, left in the
// rootfs debootstrap makes) was the longest part of scanning an image on two
// cores. The chunks are the ones Trivy's streaming scanner reads, each is
// scanned by Trivy's scanner, and the findings are numbered, deduplicated and
// sorted as Trivy does, so the result is Trivy's (TestSecretAnalyzerParallel
// compares them).
type secretAnalyzer struct {
	workers int
	scanner secret.Scanner
	trivy   *secretanalyzer.SecretAnalyzer // small files and binaries
}

func newSecretAnalyzer(workers int) *secretAnalyzer {
	return &secretAnalyzer{workers: workers, trivy: secretanalyzer.NewSecretAnalyzer(secret.Scanner{}, "")}
}

// Init loads the secret rules, as Trivy's analyzer does, and hands the
// scanner to the Trivy analyzer it wraps, so both use the same rules. It is
// called for every scan (each makes its analyzer group; scans are
// serialised by trivyMu) and makes a new scanner each time: Trivy's scanner
// keeps the logger that is slog's default when it is made, and Trivy's own
// analyzer, which keeps its first scanner, would send the logs of every
// later scan to the first scan's logger.
func (a *secretAnalyzer) Init(opt analyzer.AnalyzerOptions) error {
	c, err := secret.ParseConfig(opt.SecretScannerOption.ConfigPath)
	if err != nil {
		return fmt.Errorf("secret config error: %w", err)
	}
	a.scanner = secret.NewScanner(c, secret.WithBufferSize(secretChunk), secret.WithOverlapSize(secretOverlap))
	// Given its scanner and the same path, Trivy's analyzer needs no Init.
	a.trivy = secretanalyzer.NewSecretAnalyzer(a.scanner, opt.SecretScannerOption.ConfigPath)
	return nil
}

func (a *secretAnalyzer) Type() analyzer.Type { return analyzer.TypeSecret }
func (a *secretAnalyzer) Version() int        { return a.trivy.Version() }

func (a *secretAnalyzer) Required(filePath string, fi os.FileInfo) bool {
	return a.trivy.Required(filePath, fi)
}

func (a *secretAnalyzer) Analyze(ctx context.Context, input analyzer.AnalysisInput) (*analyzer.AnalysisResult, error) {
	size := input.Info.Size()
	if a.workers < 2 || size < secretParallelMin {
		return a.trivy.Analyze(ctx, input)
	}
	binary, err := utils.IsBinary(input.Content, size)
	if err != nil || binary {
		return a.trivy.Analyze(ctx, input) // binaries are rare and scanned as printable strings
	}
	if size > 10485760 { // Trivy's warning, word for word
		log.WithPrefix("secret").Warn("The size of the scanned file is too large. It is recommended to use `--skip-files` for this file to avoid high memory consumption.", log.FilePath(input.FilePath), log.Int64("size (MB)", size/1048576))
	}
	filePath := input.FilePath
	if input.Dir == "" { // as Trivy: files from an image get a leading "/" for the rules' paths
		filePath = "/" + filePath
	}
	if a.scanner.AllowPath(filePath) {
		return nil, nil
	}
	found, err := a.scanChunks(ctx, input.Content, size, filePath)
	if err != nil {
		return nil, err
	}
	log.WithPrefix("secret").Debug("secrets of a large file scanned in parallel", log.FilePath(input.FilePath),
		log.Int64("size", size), log.Int("goroutines", a.workers), log.Int("secrets", len(found)))
	if len(found) == 0 {
		return nil, nil
	}
	return &analyzer.AnalysisResult{Secrets: []ftypes.Secret{{FilePath: filePath, Findings: found}}}, nil
}

// secretChunkStarts are the offsets of the chunks Trivy's streaming scanner
// reads from a file of size bytes (size > secretChunk): each starts
// secretOverlap bytes before the end of the one before; the last one is the
// file's last secretOverlap bytes alone, which Trivy scans once more after
// reaching the end.
func secretChunkStarts(size int64) []int64 {
	var starts []int64
	for c := int64(0); ; c += secretChunk - secretOverlap {
		starts = append(starts, c)
		if c+secretChunk >= size {
			return append(starts, size-secretOverlap)
		}
	}
}

// scanChunks scans the chunks of r on a.workers goroutines, each chunk with
// Trivy's scanner as a whole file, then turns their line numbers and offsets
// into the file's and merges them as Trivy's scanner does.
func (a *secretAnalyzer) scanChunks(ctx context.Context, r io.ReaderAt, size int64, filePath string) ([]ftypes.SecretFinding, error) {
	starts := secretChunkStarts(size)
	end := func(i int) int64 { return min(starts[i]+secretChunk, size) }
	found := make([][]ftypes.SecretFinding, len(starts))
	// newlines[i]: the line breaks of chunk i before chunk i+1 starts.
	newlines := make([]int, len(starts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.workers)
	for first := 0; first < len(starts) && gctx.Err() == nil; first += secretTaskChunks {
		g.Go(func() error {
			last := min(first+secretTaskChunks, len(starts)) - 1
			from := starts[first]
			buf := make([]byte, end(last)-from)
			if n, err := r.ReadAt(buf, from); n < len(buf) {
				return fmt.Errorf("reading %s at %d: %w", filePath, from, err)
			}
			for i := first; i <= last; i++ {
				chunk := buf[starts[i]-from : end(i)-from]
				if i+1 < len(starts) {
					newlines[i] = bytes.Count(chunk[:starts[i+1]-starts[i]], []byte{'\n'})
				}
				found[i] = a.scanner.Scan(secret.ScanArgs{FilePath: filePath, Content: &lastReadReader{b: chunk}}).Findings
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	var all []ftypes.SecretFinding
	lines := 0
	for i, fs := range found {
		for _, f := range fs {
			f.StartLine += lines
			f.EndLine += lines
			f.Offset += int(starts[i])
			for j := range f.Code.Lines {
				f.Code.Lines[j].Number += lines
			}
			all = append(all, f)
		}
		lines += newlines[i]
	}
	return mergeSecretFindings(all), nil
}

// mergeSecretFindings is the end of Trivy's streaming scan: the first of the
// findings of a rule at the same place (found again in the overlap of two
// chunks) is kept, and they are sorted by rule and match.
func mergeSecretFindings(all []ftypes.SecretFinding) []ftypes.SecretFinding {
	type place struct {
		rule               string
		start, end, offset int
	}
	seen := make(map[place]bool, len(all))
	var kept []ftypes.SecretFinding
	for _, f := range all {
		p := place{f.RuleID, f.StartLine, f.EndLine, f.Offset}
		if !seen[p] {
			seen[p] = true
			kept = append(kept, f)
		}
	}
	sort.Slice(kept, func(i, j int) bool {
		if kept[i].RuleID != kept[j].RuleID {
			return kept[i].RuleID < kept[j].RuleID
		}
		return kept[i].Match < kept[j].Match
	})
	return kept
}

// lastReadReader returns its bytes with io.EOF in the read that takes the
// last of them, so that Trivy's streaming scanner scans them as one chunk
// and stops, as it does with a file's last chunk.
type lastReadReader struct{ b []byte }

func (r *lastReadReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	if len(r.b) == 0 {
		return n, io.EOF
	}
	return n, nil
}
