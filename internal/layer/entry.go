package layer

import (
	"archive/tar"
	"io"
)

// Entry is one file system object to put into a layer.
//
// Header.Name is a slash-separated path relative to the root of the image
// file system, without a leading "/" or "./" (for example "app/main.py").
// Directories carry tar.TypeDir, and Name has no trailing slash: the writer
// adds it. Header.Mode holds the permission and special bits (setuid, setgid,
// sticky) only; the type comes from Typeflag. Uid, Gid, Linkname and ModTime
// are written as given (ModTime clamped when the writer has an epoch).
// A whiteout is an Entry named "dir/.wh.name" (or "dir/.wh..wh..opq") of type
// tar.TypeReg and size 0.
type Entry struct {
	Header *tar.Header
	// Open returns the content of a regular file (Typeflag tar.TypeReg).
	// It is nil for every other type. The reader yields exactly Header.Size bytes.
	Open func() (io.ReadCloser, error)
}
