// Package sarif writes findings as a SARIF 2.1.0 log for GitHub code
// scanning (and any SARIF viewer), with go-sarif.
//
// Each finding is a result of the rule named by its ID (the advisory or
// the secret rule), located where it can be fixed: the Dockerfile line of
// the instruction that brought it in, or the repository file (and line) a
// COPY or ADD took it from, so that code scanning shows it on the pull
// request's diff. A finding without a location (an image scanned without
// its build) has none, and code scanning lists it without a file.
//
// Levels: CRITICAL and HIGH are errors, MEDIUM warnings, LOW and UNKNOWN
// notes. Rules carry a short and a full description, help text in text
// and Markdown (package, installed and fixed versions, the layer and the
// instruction), the advisory's URL and the `security-severity` property
// code scanning ranks alerts by (CRITICAL 9.5, HIGH 8.0, MEDIUM 5.5, LOW
// 2.0, UNKNOWN 0.0, the same scores Trivy writes). Every result has a
// partial fingerprint made of what identifies the finding across builds
// (kind, ID, package, path in the image: findings.Finding.Key), so that
// an alert stays the same alert when a line moves or a layer is rebuilt.
package sarif
