// Package scan scans an image ship holds in memory with Trivy used as a Go
// library, and turns Trivy's report into findings (internal/findings) that
// point at their cause. It is the only package of ship that imports
// github.com/aquasecurity/trivy (internal/archtest checks it); building it
// needs GOEXPERIMENT=jsonv2.
//
// # Wiring
//
// Scan does what Trivy's CLI does in pkg/commands/artifact for `trivy image`
// in standalone mode, without the CLI's flags and global configuration:
// it adapts the v1.Image to fanal's types.Image (a thin wrapper adding a name,
// an ID and repository tags and digests: no pull, no tarball), builds the
// image artifact (pkg/fanal/artifact/image) over Trivy's FS cache, and runs it
// through the local scan service (pkg/scan/local with the OS package scanner,
// the language package scanner and the vulnerability client). Its scan
// options are the CLI's defaults, with PkgRelationships set to every
// relationship: left empty, Trivy filters every package out and reports
// nothing, without an error.
//
// # Analyzers
//
// The analyzers disabled are those `trivy image` disables by default, each on
// purpose:
//
//   - apk-command (recovering removed packages from history): off in Trivy
//     unless --removed-pkgs;
//   - license files: expensive, only for full license scanning, which ship
//     does not do;
//   - the IaC config file analyzers and history-dockerfile: misconfiguration
//     scanning of files inside the image and of its config is not offered
//     (the Dockerfile itself is checked by ScanDockerfile);
//   - executables: they look SBOM attestations up in Rekor over the network,
//     fail offline and slow every scan;
//   - rpm archives: experimental in Trivy;
//   - secret, when the secret scanner is off; jar, when the vulnerability
//     scanner is off (jars need the Java DB).
//
// One difference from `trivy image` is deliberate: the lock file analyzers
// (requirements.txt, Pipfile.lock, poetry.lock, package-lock.json, yarn.lock,
// pnpm-lock.yaml, go.mod, Gemfile.lock, composer.lock, Cargo.lock, ...) stay
// on. `trivy image` turns them off and reports only installed packages; ship
// keeps them because a lock file copied from the build context is what lets a
// finding point at a line of the user's repository, and because an image that
// ships a lock file usually ships what it locks. The installed-package
// analyzers (dpkg, apk, rpm, Python METADATA, package.json in node_modules,
// Go and Rust binaries, jars) stay on as in `trivy image`.
//
// Trivy disables the secret analyzer on the layers it guesses belong to the
// base image (those up to the base image's CMD in the history); ship keeps
// that behaviour.
//
// The secret analyzer registered in Trivy is replaced (at init, through
// Trivy's analyzer registry) by one that finds the same secrets with Trivy's
// scanner but scans the chunks of a text file of 1 MiB or more on every core
// (secretAnalyzer): Trivy scans a file's chunks one after another, and a
// single large file (the 50 MB apt package list a debootstrap rootfs keeps)
// was the longest part of a scan. Same type and version, so Trivy still
// turns it off where it turns its own off and cached layers stay valid.
//
// # Vulnerability DB and caches
//
// Everything lives in the cache dir exactly as Trivy lays it out, so an
// existing Trivy cache works as is: the vulnerability DB in DIR/db (trivy.db
// and metadata.json), the Java DB in DIR/java-db (downloaded only when a jar
// is analysed), the analysis of each layer in DIR/fanal/fanal.db keyed by the
// layer's DiffID and the analyzer versions, so the layers of a base image are
// analysed once across runs (Stats.AnalysedLayers lists those analysed by one
// scan).
//
// The DB is downloaded with Trivy's DB client only when needed (no DB, or its
// NextUpdate has passed and it was not downloaded in the last hour). The
// repositories are tried in order and any failure (TOOMANYREQUESTS, network,
// missing repository) moves on to the next one: Trivy's own fallback only
// moves on after temporary registry errors. When all fail, an older DB in the
// cache is used with a warning that gives its age; without one, Scan fails
// with a one-line error naming the repositories tried and the ways out (a
// mirror with db-repository, a cache-dir restored from a cache).
//
// # Dockerfile checks
//
// ScanDockerfile runs Trivy's misconfiguration checks for Dockerfiles, those
// embedded in Trivy (trivy-checks): nothing is downloaded, so it works
// offline. Each failed check becomes a misconfig finding at the line of the
// instruction it names. IaC files inside the image are not checked (their
// analyzers are off, as in `trivy image`).
//
// # Filters, SBOM, client/server mode
//
// As the CLI always does, Trivy's result filter runs after the scan: it
// removes duplicate vulnerabilities and applies the ignore files
// (WithIgnoreFiles: .trivyignore, .trivyignore.yaml) and VEX documents
// (WithVEX). Every severity and status is kept: what is reported and what
// fails the run is decided by findings.Policy. Result.WriteSBOM writes the
// packages found as CycloneDX or SPDX JSON with Trivy's own writers.
//
// WithServer scans through a Trivy server with Trivy's RPC client, as
// `trivy image --server` does: the server holds the DB and the layer cache,
// the layers it has not seen are analysed here and sent to it, and no DB is
// downloaded here.
//
// # Logging and global state
//
// Trivy logs through slog's default logger. During a scan that logger is
// pointed at the one given with WithLogger (Trivy's Info demoted to Debug)
// and restored afterwards; nothing is written to stdout. Trivy also keeps the
// open DB and the Java DB settings in package-level variables, so scans in one
// process are serialised.
package scan
