//go:build linux

package sandbox

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// onDisposableThread runs f on a goroutine locked to an OS thread that is not
// the process's main thread, and waits for it. When f changes the thread's
// namespaces or its security state (seccomp, no_new_privs) it sets *tainted,
// and the thread is never unlocked: it ends with the goroutine and takes its
// private mounts and filters along. The main thread must
// never be that thread: it cannot end, and /proc/self (the whole process, as
// others see it) reports its namespaces.
func onDisposableThread(f func(tainted *bool)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// Holding the main thread keeps it from the goroutine below.
			onDisposableThread(f)
			runtime.UnlockOSThread()
			return
		}
		tainted := false
		f(&tainted)
		if !tainted {
			runtime.UnlockOSThread()
		}
	}()
	<-done
}
