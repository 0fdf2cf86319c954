package rootfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
)

// ErrNotFound is wrapped by the errors of LookupUser and LookupGroup when the
// name is not in /etc/passwd or /etc/group (or the file does not exist).
var ErrNotFound = errors.New("no matching entry")

// User is an entry of /etc/passwd.
type User struct {
	Name     string
	UID, GID int
	Home     string
}

// LookupUser finds name in fsys's /etc/passwd (fsys rooted at the image's
// root, for example a View).
//
// A numeric name is a UID: the GID, name and home come from the first
// passwd entry with that UID, and when there is none the GID is the UID
// itself and Home is "/". (BuildKit's COPY --chown=<uid> always uses the UID
// as GID, ignoring passwd: callers that need that use the UID.)
// "root" resolves to 0:0 even without a passwd file, as in BuildKit.
// Comment lines, blank lines and lines whose UID or GID is not a number are
// skipped; missing trailing fields are empty (GID 0).
func LookupUser(fsys fs.FS, name string) (User, error) {
	if name == "" {
		return User{}, errors.New("looking up user: empty name")
	}
	uid, numeric := parseID(name)
	data, err := fs.ReadFile(fsys, "etc/passwd")
	missing := errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
	if err != nil && !missing {
		return User{}, fmt.Errorf("looking up user %q: reading /etc/passwd: %w", name, err)
	}
	for _, f := range splitLines(data) {
		u := User{Name: field(f, 0), Home: field(f, 5)}
		var ok1, ok2 bool
		u.UID, ok1 = parseIDField(field(f, 2))
		u.GID, ok2 = parseIDField(field(f, 3))
		if !ok1 || !ok2 {
			continue
		}
		if (numeric && u.UID == uid) || (!numeric && u.Name == name) {
			return u, nil
		}
	}
	switch {
	case numeric:
		return User{Name: name, UID: uid, GID: uid, Home: "/"}, nil
	case name == "root":
		return User{Name: "root", UID: 0, GID: 0, Home: "/root"}, nil
	case missing:
		return User{}, fmt.Errorf("looking up user %q: no /etc/passwd in the image: %w", name, ErrNotFound)
	default:
		return User{}, fmt.Errorf("looking up user %q: not in /etc/passwd: %w", name, ErrNotFound)
	}
}

// LookupGroup finds the GID of name in fsys's /etc/group. A numeric name is
// the GID itself; "root" is 0 even without a group file.
func LookupGroup(fsys fs.FS, name string) (int, error) {
	if name == "" {
		return 0, errors.New("looking up group: empty name")
	}
	if gid, ok := parseID(name); ok {
		return gid, nil
	}
	data, err := fs.ReadFile(fsys, "etc/group")
	missing := errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
	if err != nil && !missing {
		return 0, fmt.Errorf("looking up group %q: reading /etc/group: %w", name, err)
	}
	for _, f := range splitLines(data) {
		gid, ok := parseIDField(field(f, 2))
		if ok && field(f, 0) == name {
			return gid, nil
		}
	}
	switch {
	case name == "root":
		return 0, nil
	case missing:
		return 0, fmt.Errorf("looking up group %q: no /etc/group in the image: %w", name, ErrNotFound)
	default:
		return 0, fmt.Errorf("looking up group %q: not in /etc/group: %w", name, ErrNotFound)
	}
}

// parseID parses a non-negative 32-bit decimal id.
func parseID(s string) (int, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// parseIDField parses an id field of passwd or group: empty (a short line)
// is 0.
func parseIDField(s string) (int, bool) {
	if s == "" {
		return 0, true
	}
	return parseID(s)
}

// splitLines returns the colon-separated fields of every line that is not
// blank or a comment.
func splitLines(data []byte) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}

func field(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}
