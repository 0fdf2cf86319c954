package sandbox

import "golang.org/x/sys/unix"

const auditArch = unix.AUDIT_ARCH_AARCH64

// syncSyscalls lists the numbers of the syscalls suppressSync makes no-ops.
func syncSyscalls() []int {
	return []int{unix.SYS_FSYNC, unix.SYS_FDATASYNC, unix.SYS_SYNC_FILE_RANGE, unix.SYS_SYNC, unix.SYS_SYNCFS, unix.SYS_MSYNC}
}
