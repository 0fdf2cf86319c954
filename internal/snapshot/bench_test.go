package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkTakeDiff measures Take and Diff on a tree of 20,000 files in 200
// directories where 10 files change between the two.
func BenchmarkTakeDiff(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []Option
	}{
		{"metadata", nil},
		{"content-hash", []Option{WithContentHash()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			for d := range 200 {
				for f := range 100 {
					write(b, dir, fmt.Sprintf("d%03d/f%03d", d, f), fmt.Sprintf("content of %d/%d", d, f), 0o644)
				}
			}
			i := 0
			for b.Loop() {
				s, err := Take(ctx, dir, bc.opts...)
				must(b, err)
				for c := range 10 {
					p := filepath.Join(dir, fmt.Sprintf("d%03d/f%03d", c*20, c), "")
					must(b, os.WriteFile(p, fmt.Appendf(nil, "changed %d", i), 0o644))
				}
				entries, err := s.Diff(ctx, dir)
				must(b, err)
				if len(entries) != 20 {
					b.Fatalf("got %d entries, want 20", len(entries))
				}
				i++
			}
		})
	}
}
