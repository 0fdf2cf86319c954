package rootfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
)

// maxUserFileBytes bounds how much of /etc/passwd and /etc/group is read,
// as BuildKit does.
const maxUserFileBytes = 10 << 20

// passwdEntry is a line of /etc/passwd.
type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

// groupEntry is a line of /etc/group.
type groupEntry struct {
	name    string
	gid     int
	members []string
}

// RunUser is the identity a RUN process gets.
type RunUser struct {
	UID, GID int
	// Groups are the supplementary groups, the primary group first (as
	// runc sets them).
	Groups []int
	// Home is the home directory of the uid's passwd entry, "/" without one.
	Home string
}

// ResolveRunUser resolves a USER value for RUN against fsys (a root file
// system; pass an os.Root's FS so that a symlinked /etc/passwd cannot name a
// host file) as BuildKit (executor/oci.GetUser, moby/sys/user.GetExecUser)
// and runc do: "uid:gid" in numbers is taken as is; otherwise the user (a
// name, or a number with or without a passwd entry) is looked up in
// /etc/passwd, the group in /etc/group; without an explicit group the
// supplementary groups are those that list the user as a member. An empty
// spec is root.
func ResolveRunUser(fsys fs.FS, spec string) (RunUser, error) {
	passwd, passwdErr := readUserFile(fsys, "etc/passwd")
	group, groupErr := readUserFile(fsys, "etc/group")

	isDefault := spec == ""
	if isDefault {
		spec = "0"
	}
	uid, gid, groups, err := execUser(spec, passwd, passwdErr == nil, group, groupErr == nil)
	if err != nil {
		if !isDefault {
			return RunUser{}, err
		}
		uid, gid, groups = 0, 0, nil
	}
	all := []int{gid}
	for _, g := range groups {
		if g != gid {
			all = append(all, g)
		}
	}
	home := "/"
	for _, p := range parsePasswd(passwd) {
		if p.uid == uid {
			home = p.home
			break
		}
	}
	return RunUser{UID: uid, GID: gid, Groups: all, Home: home}, nil
}

// execUser is moby/sys/user.GetExecUser with empty defaults, after
// BuildKit's fast path for a numeric "uid:gid".
func execUser(spec string, passwd []byte, havePasswd bool, group []byte, haveGroup bool) (uid, gid int, groups []int, err error) {
	userArg, groupArg, hasGroup := strings.Cut(spec, ":")
	if hasGroup {
		u, uerr := parseRunID(userArg)
		g, gerr := parseRunID(groupArg)
		if uerr == nil && gerr == nil {
			return u, g, nil, nil
		}
	}
	uidArg, isUID := numericID(userArg)
	gidArg, isGID := numericID(groupArg)

	var matched *passwdEntry
	if havePasswd {
		for _, p := range parsePasswd(passwd) {
			if (isUID && p.uid == uidArg) || (!isUID && p.name == userArg) {
				matched = &p
				break
			}
		}
	}
	switch {
	case matched != nil:
		uid, gid = matched.uid, matched.gid
	case !isUID:
		return 0, 0, nil, fmt.Errorf("unable to find user %s: no matching entries in passwd file", userArg)
	default:
		uid = uidArg
	}
	if groupArg == "" && matched == nil {
		return uid, gid, nil, nil
	}
	var found []groupEntry
	if haveGroup {
		for _, g := range parseGroup(group) {
			switch {
			case groupArg == "":
				for _, m := range g.members {
					if m == matched.name {
						found = append(found, g)
						break
					}
				}
			case isGID:
				if g.gid == gidArg {
					found = append(found, g)
				}
			case g.name == groupArg:
				found = append(found, g)
			}
		}
	}
	if groupArg != "" {
		switch {
		case len(found) > 0:
			gid = found[0].gid
		case !isGID:
			return 0, 0, nil, fmt.Errorf("unable to find group %s: no matching entries in group file", groupArg)
		default:
			gid = gidArg
		}
		return uid, gid, nil, nil
	}
	for _, g := range found {
		groups = append(groups, g.gid)
	}
	return uid, gid, groups, nil
}

// parseRunID parses a numeric id ("root" is 0), as BuildKit's ParseUIDGID.
func parseRunID(s string) (int, error) {
	if s == "root" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// numericID parses a decimal id; "" is not one.
func numericID(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, false
	}
	return n, true
}

// readUserFile reads a regular file of at most maxUserFileBytes.
func readUserFile(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("/%s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxUserFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxUserFileBytes {
		return nil, errors.New("/" + name + " is too big")
	}
	return data, nil
}

func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	for _, f := range splitLines(data) {
		uid, _ := strconv.Atoi(field(f, 2))
		gid, _ := strconv.Atoi(field(f, 3))
		out = append(out, passwdEntry{name: field(f, 0), uid: uid, gid: gid, home: field(f, 5)})
	}
	return out
}

func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	for _, f := range splitLines(data) {
		gid, _ := strconv.Atoi(field(f, 2))
		g := groupEntry{name: field(f, 0), gid: gid}
		if m := field(f, 3); m != "" {
			g.members = strings.Split(m, ",")
		}
		out = append(out, g)
	}
	return out
}
