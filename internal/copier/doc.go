// Package copier implements the file selection of COPY and ADD with BuildKit's
// semantics: sources from the build context (filtered by .dockerignore) or from
// another file system (a stage or an image, as an fs.FS), globs, --exclude,
// the file-versus-directory and trailing-slash rules for the destination,
// --chown/--chmod, parent directory creation, ADD's local tar extraction and
// URL download with --checksum. It produces layer entries; it never writes to
// the host file system.
package copier
