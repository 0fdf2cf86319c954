package dockerfile

import "fmt"

// Location is a place in a Dockerfile. Lines are 1-based.
type Location struct {
	File    string // the Dockerfile's name as the user gave it, e.g. "Dockerfile"
	Line    int
	EndLine int
}

// String returns "FILE:LINE", the form used in every error about a Dockerfile.
func (l Location) String() string {
	if l.Line <= 0 {
		return l.File
	}
	return fmt.Sprintf("%s:%d", l.File, l.Line)
}

// Error is an error about a Dockerfile that points at a line.
// Its message is "FILE:LINE: message".
type Error struct {
	Location Location
	Err      error
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Location, e.Err) }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }
