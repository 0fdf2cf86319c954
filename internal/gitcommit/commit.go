package gitcommit

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// commitTime reads commit id and returns its committer time.
func (r *repo) commitTime(id string) (time.Time, error) {
	typ, data, err := r.readObject(id)
	if err != nil {
		return time.Time{}, err
	}
	if typ != objCommit {
		return time.Time{}, fmt.Errorf("object %s is a %s, not a commit", id, typeNames[typ])
	}
	t, err := committerTime(data)
	if err != nil {
		return time.Time{}, fmt.Errorf("commit %s: %w", id, err)
	}
	return t, nil
}

// committerTime parses the "committer Name <email> SECONDS TZ" header line
// of a commit object.
func committerTime(commit []byte) (time.Time, error) {
	for len(commit) > 0 {
		var line []byte
		line, commit, _ = bytes.Cut(commit, []byte("\n"))
		if len(line) == 0 {
			break // end of the headers
		}
		rest, ok := bytes.CutPrefix(line, []byte("committer "))
		if !ok {
			continue
		}
		gt := bytes.LastIndexByte(rest, '>')
		if gt < 0 {
			return time.Time{}, fmt.Errorf("committer line has no <email>")
		}
		fields := strings.Fields(string(rest[gt+1:]))
		if len(fields) != 2 {
			return time.Time{}, fmt.Errorf("committer line has no time and time zone")
		}
		sec, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("committer time %q is not a number", truncate(fields[0]))
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("no committer line")
}
