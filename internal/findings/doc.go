// Package findings holds the plain types every part of ship shares about what a
// scan found: Finding, Severity, Kind, Location, Origin, Summary, the reporting
// and gating Policy, the Diff against a previous image, the attribution of a
// finding to the Dockerfile line or source file that caused it, and the
// findings-json document. It uses the standard library only, so reports and the
// action contract can use it without pulling the scanner in.
//
// # Attribution
//
// The build describes each layer of the image it made with a LayerOrigin: its
// DiffID, whether it comes from the base image, the instruction that created it
// with its Dockerfile location, and, for COPY and ADD, which files it copied from
// the build context. Attribution.Apply then points a finding at its cause:
//
//   - a finding in a base layer: Origin base, Location the FROM line;
//   - a finding in a layer made by RUN: Origin build, Location the RUN line;
//   - a finding in a file COPY/ADD brought from the context: Location is the
//     source file in the repository, with the line when it is known: the line
//     the scanner reports (a secret), else the line of the package entry in the
//     source file, found by a plain text search (see Attribution.Apply);
//   - without origins (an image built elsewhere) the Location stays empty and
//     the Origin is base: nothing in the change under review made it.
//
// # Diff
//
// Diff classifies findings as new, fixed or unchanged against the findings of a
// previous image. Two findings are the same when their Key is: kind, ID, package
// and file path in the image. The installed version is deliberately not part of
// the key: a package upgraded to a version that is still vulnerable to the same
// advisory is "unchanged", not "fixed" plus "new".
package findings
