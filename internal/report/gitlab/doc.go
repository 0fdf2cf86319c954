// Package gitlab writes findings as GitLab CI report artifacts: the
// container scanning report (artifacts:reports:container_scanning, shown in
// the merge request's security widget and the vulnerability report) and the
// code quality report (artifacts:reports:codequality, shown on the merge
// request's diff on every GitLab tier).
//
// The container scanning report holds the vulnerabilities of packages
// (secrets and misconfigurations have no package and are left out of it);
// it declares schema version 15.0.7, the newest version vendored in GitLab
// itself, which every current instance accepts (a report declaring 15.2.x
// is rejected by instances that only vendor up to 15.1.x), and only uses
// fields that version has. Each vulnerability has a stable id derived from
// the image repository and the finding (findings.Finding.Key), so GitLab
// tracks it across pipelines.
//
// The code quality report has one entry per finding that has a location in
// the repository (a Dockerfile line or a source file a COPY brought in),
// with a fingerprint from the finding and its file, so GitLab can tell new
// entries from old ones between the merge request and its target branch.
// BuildFailure is the code quality report of a failed build: one blocker
// entry at the failing Dockerfile line.
//
// NoteClient writes the merge request note through the REST API (v4) with
// a PRIVATE-TOKEN: Upsert updates the note carrying a marker (the image's,
// markdown.Marker) in place, or creates it, so each image keeps one note
// per merge request; the body is cut to GitLab's limit (MaxNote) with
// markdown.Truncate. CI_JOB_TOKEN cannot write notes, so the token is an
// access token with the api scope. A missing token, a 401, a 403 or a 404
// gives a *NoteError whose one-line message says what the token lacks, for
// the caller to warn once and go on. 429 and server errors are retried
// (three tries in all) with a short backoff, honouring Retry-After.
package gitlab
