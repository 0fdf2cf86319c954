package action

import (
	"errors"
	"fmt"
)

// Exit codes of the ship command.
const (
	// CodeOK means success.
	CodeOK = 0
	// CodeInternal is used for errors outside the classes below, such as
	// failing to write the CI outputs.
	CodeInternal = 1
	// CodeGate means the scan found what fail-on says fails the run.
	CodeGate = 1
	// CodeUsage means bad usage or configuration: unknown flags, invalid
	// values, a missing context directory or Dockerfile.
	CodeUsage = 2
	// CodeBuild means the build failed, or its result could not be written
	// to the OCI layout or tarball.
	CodeBuild = 3
	// CodePush means pushing to the registry failed.
	CodePush = 4
	// CodeScan means the scan could not run: no vulnerability DB, an
	// unreadable image, a Trivy server that does not answer.
	CodeScan = 5
)

// ExitError is an error that says which exit code the process should use.
type ExitError struct {
	Code int
	Err  error
}

// Error returns the message of the underlying error.
func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode returns the exit code for err: CodeOK for nil, the code of the
// first *ExitError in its chain, CodeInternal otherwise.
func ExitCode(err error) int {
	if err == nil {
		return CodeOK
	}
	if ee, ok := errors.AsType[*ExitError](err); ok {
		return ee.Code
	}
	return CodeInternal
}

func usageErrorf(format string, args ...any) error {
	return &ExitError{Code: CodeUsage, Err: fmt.Errorf(format, args...)}
}

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}
