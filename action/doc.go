// Package action is ship's contract with its users: Config holds every
// setting (its action input name, flag, SHIP_* variable, default and
// validation, all declared once in Inputs), Load reads it from CLI flags,
// GitHub Actions inputs and the SHIP_* environment, and Run drives the work
// (build, write the OCI layout and tarball, push) and writes the outputs for
// GitHub Actions, GitLab CI or a terminal.
//
// Errors returned by Load and Run are *ExitError values carrying the process
// exit code (see the Code constants).
package action
