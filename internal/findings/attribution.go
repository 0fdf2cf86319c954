package findings

import (
	"bufio"
	"bytes"
	"io/fs"
	"strings"
)

// LayerOrigin says where one layer of the scanned image came from.
type LayerOrigin struct {
	DiffID      string   // "sha256:..." uncompressed layer digest
	Digest      string   // compressed
	Base        bool     // true: from the base image (FROM)
	Instruction string   // "RUN apt-get ..." / "COPY app /app" / "FROM debian" for base layers
	Location    Location // Dockerfile:LINE of the instruction (FROM line for base layers)
	// Files copied from the build context by this layer: image path (no leading "/", slash
	// separated) -> repository path relative to the context (COPY/ADD only).
	ContextFiles map[string]string
}

// Attribution points findings at their causes (see the package
// documentation). The zero Attribution knows no origins: every finding is
// marked base, without a location.
type Attribution struct {
	// Origins describes the image's layers, in image order (the index of an
	// origin is the layer's index).
	Origins []LayerOrigin
	// Source is the build context, used to find the line of a package in a
	// lock file copied from it. Nil: lines of packages are not searched.
	Source fs.FS
}

// Apply fills f's Layer (when empty), LayerIndex, Origin, Instruction and
// Location from the origin of the layer whose DiffID is f.DiffID.
//
// The Location is the origin's Dockerfile location, unless f.Path (the file
// in the image) was copied from the build context by that layer: then it is
// the source file, with line when line > 0 (the scanner knows it: a secret,
// a package entry), else, for a package, the first line of the source file
// that contains the package name as a whole word, ignoring case and treating
// "-", "_" and "." alike, as Python's package names do. That heuristic finds
// "requests==2.0" in requirements.txt and "node_modules/lodash" in
// package-lock.json; it may pick an earlier mention of the name, and gives no
// line (0) when the name is absent or Source is nil.
//
// A DiffID that no origin describes (or no origins at all) leaves the
// Location empty and marks the finding base.
func (a Attribution) Apply(f *Finding, line int) {
	idx := -1
	for i, o := range a.Origins {
		if o.DiffID != "" && o.DiffID == f.DiffID {
			idx = i
			break
		}
	}
	if idx < 0 {
		f.Origin = OriginBase
		f.Instruction = ""
		f.Location = Location{}
		return
	}
	o := a.Origins[idx]
	if f.Layer == "" {
		f.Layer = o.Digest
	}
	f.LayerIndex = idx
	if o.Base {
		f.Origin = OriginBase
		f.Instruction = ""
	} else {
		f.Origin = OriginBuild
		f.Instruction = o.Instruction
	}
	f.Location = o.Location
	if src, ok := o.ContextFiles[strings.TrimPrefix(f.Path, "/")]; ok && f.Path != "" {
		f.Location = Location{Path: src, Line: line}
		if line <= 0 && f.Package != "" && a.Source != nil {
			f.Location.Line = findName(a.Source, src, f.Package)
		}
	}
}

// findName returns the 1-based line of the first whole-word, case- and
// separator-insensitive occurrence of name in file path of fsys, or 0.
func findName(fsys fs.FS, path, name string) int {
	b, err := fs.ReadFile(fsys, path)
	if err != nil {
		return 0
	}
	want := normalizeName(name)
	if want == "" {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		if containsWord(normalizeName(sc.Text()), want) {
			return n
		}
	}
	return 0
}

// normalizeName lower-cases s and maps "_" and "." to "-".
func normalizeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '.':
			return '-'
		}
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

// containsWord reports whether word occurs in s not preceded or followed by a
// letter, digit or "-" (the normalised name characters).
func containsWord(s, word string) bool {
	for i := 0; i+len(word) <= len(s); {
		j := strings.Index(s[i:], word)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(word)
		if (start == 0 || !isNameByte(s[start-1])) && (end == len(s) || !isNameByte(s[end])) {
			return true
		}
		i = start + 1
	}
	return false
}

func isNameByte(c byte) bool {
	return c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z'
}
