//go:build linux

package sandbox

import (
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// The main thread is free to run any goroutine, so over many calls from
// many goroutines some land on it: f must still never run there.
func TestDisposableThreadIsNeverTheMainThread(t *testing.T) {
	var onMain, calls atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				onDisposableThread(func(*bool) {
					calls.Add(1)
					if unix.Gettid() == unix.Getpid() {
						onMain.Add(1)
					}
				})
			}
		})
	}
	wg.Wait()
	if calls.Load() != 800 {
		t.Fatalf("f ran %d times, want 800", calls.Load())
	}
	if n := onMain.Load(); n != 0 {
		t.Fatalf("f ran on the main thread %d times", n)
	}
}
