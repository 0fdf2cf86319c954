//go:build linux

package sandbox

import (
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data: the syscall number, then the audit arch.
const (
	seccompDataNR   = 0
	seccompDataArch = 4
)

// suppressSync installs on the calling OS thread a seccomp filter under which
// fsync, fdatasync, sync_file_range, sync, syncfs and msync return 0 without
// doing anything, as systemd-nspawn's --suppress-sync does. Processes started
// from the thread inherit the filter across fork and exec. What a RUN writes
// lives until its layer is written, and a crash loses the build anyway:
// waiting for the disk (dpkg syncs every file it unpacks) only costs time.
// Syscalls of another ABI (i386, x32) are not matched and stay real.
//
// With noNewPrivs the thread first sets PR_SET_NO_NEW_PRIVS, which the kernel
// requires of a thread without CAP_SYS_ADMIN; setuid programs started from it
// then no longer change their user. The thread must never run other
// goroutines afterwards: the filter cannot be removed.
func suppressSync(noNewPrivs bool) error {
	if len(syncSyscalls()) == 0 {
		return fmt.Errorf("no syscall table for this architecture")
	}
	prog, err := syncFilter()
	if err != nil {
		return err
	}
	if noNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting no_new_privs: %w", err)
		}
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0); err != nil {
		return fmt.Errorf("installing the seccomp filter: %w", err)
	}
	return nil
}

// syncFilter assembles the filter: for this architecture's ABI, each sync
// syscall returns errno 0 (success); everything else is allowed.
func syncFilter() ([]unix.SockFilter, error) {
	nrs := syncSyscalls()
	n := len(nrs)
	insns := []bpf.Instruction{
		bpf.LoadAbsolute{Off: seccompDataArch, Size: 4},
		// Another ABI: skip the comparisons, straight to allow.
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: auditArch, SkipTrue: uint8(n + 1)},
		bpf.LoadAbsolute{Off: seccompDataNR, Size: 4},
	}
	for i, nr := range nrs {
		// A match jumps over the remaining comparisons and the allow.
		insns = append(insns, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(nr), SkipTrue: uint8(n - i)})
	}
	insns = append(insns,
		bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO}, // errno 0: the call "succeeds"
	)
	raw, err := bpf.Assemble(insns)
	if err != nil {
		return nil, fmt.Errorf("assembling the seccomp filter: %w", err)
	}
	prog := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return prog, nil
}
