package build

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/intesys/ship-action/internal/dockerfile"
)

// defaultBinfmtDir is where the kernel lists binfmt_misc handlers.
const defaultBinfmtDir = "/proc/sys/fs/binfmt_misc"

// withBinfmtDir makes the emulation check read binfmt_misc handlers from
// dir instead of /proc/sys/fs/binfmt_misc (a test hook).
func withBinfmtDir(dir string) Option {
	return func(o *options) error { o.binfmtDir = dir; return nil }
}

// elfArch is how an architecture's executables start: ELF class (1: 32
// bit, 2: 64 bit), byte order (1: little, 2: big endian) and e_machine.
type elfArch struct {
	class, data byte
	machine     uint16
}

// elfArchOf returns the ELF identification of the executables of arch (a
// GOARCH name, as in image platforms).
func elfArchOf(arch string) (elfArch, bool) {
	switch arch {
	case "386":
		return elfArch{1, 1, 3}, true
	case "amd64":
		return elfArch{2, 1, 62}, true
	case "arm":
		return elfArch{1, 1, 40}, true
	case "arm64":
		return elfArch{2, 1, 183}, true
	case "loong64":
		return elfArch{2, 1, 258}, true
	case "mips":
		return elfArch{1, 2, 8}, true
	case "mipsle":
		return elfArch{1, 1, 8}, true
	case "mips64":
		return elfArch{2, 2, 8}, true
	case "mips64le":
		return elfArch{2, 1, 8}, true
	case "ppc64":
		return elfArch{2, 2, 21}, true
	case "ppc64le":
		return elfArch{2, 1, 21}, true
	case "riscv64":
		return elfArch{2, 1, 243}, true
	case "s390x":
		return elfArch{2, 2, 22}, true
	}
	return elfArch{}, false
}

// runsNatively reports whether a host of architecture host runs the
// executables of arch without emulation: its own, 32-bit x86 on x86-64,
// and 32-bit ARM on arm64 (not every arm64 CPU has AArch32; where it lacks
// it, the RUN fails with the kernel's exec format error).
func runsNatively(host, arch string) bool {
	switch {
	case host == arch:
		return true
	case host == "amd64" && arch == "386":
		return true
	case host == "arm64" && arch == "arm":
		return true
	}
	return false
}

// checkEmulation fails when the stage's platform is not the host's and
// the kernel has no binfmt_misc handler that runs its executables.
func (st *stageState) checkEmulation() error {
	host := dockerfile.HostPlatform()
	want := st.platform
	if want.OS != "" && want.OS != host.OS || want.Architecture == "" || runsNatively(host.Architecture, want.Architecture) {
		return nil
	}
	dir := st.b.opts.binfmtDir
	if dir == "" {
		dir = defaultBinfmtDir
	}
	ok, err := binfmtHandles(dir, want.Architecture)
	if err != nil {
		// binfmt_misc is not mounted here (as in a container): handlers
		// registered by the host still apply, so let the RUN try.
		st.b.opts.logger.Warn("cannot tell whether this machine emulates the stage's platform",
			"platform", platformName(want), "err", err)
		return nil
	}
	if ok {
		return nil
	}
	return noEmulation(want, host)
}

// noEmulation is the error of a RUN for platform want on host.
func noEmulation(want, host v1.Platform) error {
	return fmt.Errorf("RUN for %s needs emulation: this machine is %s and has no binfmt_misc handler for %s "+
		"(on GitHub use docker/setup-qemu-action, or a native %s runner)",
		platformName(want), platformName(host), want.Architecture, want.Architecture)
}

// execFormatError returns the emulation error when runErr is the kernel's
// "exec format error" for a stage of another architecture: where
// binfmt_misc cannot be read (a container), checkEmulation lets the RUN
// try, and this is how it fails. It returns nil otherwise.
func (st *stageState) execFormatError(runErr error) error {
	host := dockerfile.HostPlatform()
	if !errors.Is(runErr, syscall.ENOEXEC) || st.platform.Architecture == "" || st.platform.Architecture == host.Architecture {
		return nil
	}
	return noEmulation(st.platform, host)
}

// platformName is os/arch[/variant], without arm64's default variant v8.
func platformName(p v1.Platform) string {
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Architecture == "arm64" && p.Variant == "v8" {
		p.Variant = ""
	}
	return dockerfile.FormatPlatform(p)
}

// binfmtHandles reports whether dir (a binfmt_misc mount) has an enabled
// handler whose magic matches the ELF executables of arch. It fails when
// dir is not a binfmt_misc mount (no status file) or binfmt_misc is
// disabled as a whole.
func binfmtHandles(dir, arch string) (bool, error) {
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return false, fmt.Errorf("reading binfmt_misc status: %w", err)
	}
	if strings.TrimSpace(string(status)) != "enabled" {
		return false, nil
	}
	ea, ok := elfArchOf(arch)
	if !ok {
		return false, nil
	}
	hdr := elfHeader(ea)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("reading binfmt_misc handlers: %w", err)
	}
	for _, e := range ents {
		if e.Name() == "status" || e.Name() == "register" || !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // unregistered meanwhile
		}
		if err != nil {
			return false, fmt.Errorf("reading binfmt_misc handler %s: %w", e.Name(), err)
		}
		if h, ok := parseBinfmt(data); ok && h.matches(hdr) {
			return true, nil
		}
	}
	return false, nil
}

// elfHeader is the start of an executable of ea (ELF header with e_type
// ET_EXEC), as binfmt_misc magics match it.
func elfHeader(ea elfArch) []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5], h[6] = ea.class, ea.data, 1
	var bo binary.ByteOrder = binary.LittleEndian
	if ea.data == 2 {
		bo = binary.BigEndian
	}
	bo.PutUint16(h[16:], 2) // ET_EXEC
	bo.PutUint16(h[18:], ea.machine)
	return h
}

// binfmtHandler is an enabled magic-type binfmt_misc entry.
type binfmtHandler struct {
	offset      int
	magic, mask []byte
}

// parseBinfmt reads a handler file: "enabled", "interpreter ...",
// "flags: ...", "offset N", "magic HEX", "mask HEX". Disabled and
// extension-type handlers are not ok.
func parseBinfmt(data []byte) (binfmtHandler, bool) {
	var h binfmtHandler
	enabled := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		var err error
		switch k {
		case "enabled":
			enabled = true
		case "offset":
			h.offset, err = strconv.Atoi(v)
		case "magic":
			h.magic, err = hex.DecodeString(v)
		case "mask":
			h.mask, err = hex.DecodeString(v)
		}
		if err != nil {
			return h, false
		}
	}
	if !enabled || len(h.magic) == 0 || h.offset < 0 || (h.mask != nil && len(h.mask) != len(h.magic)) {
		return h, false
	}
	return h, true
}

// matches reports whether the kernel would hand a file starting with hdr
// to the handler.
func (h binfmtHandler) matches(hdr []byte) bool {
	if h.offset+len(h.magic) > len(hdr) {
		return false
	}
	for i, m := range h.magic {
		b := hdr[h.offset+i]
		if h.mask != nil {
			b &= h.mask[i]
			m &= h.mask[i]
		}
		if b != m {
			return false
		}
	}
	return true
}
