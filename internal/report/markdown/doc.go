// Package markdown renders a build and scan result as Markdown for the
// places reviewers read: the pull request comment, the check run summary
// and the job summary on GitHub, the merge request note on GitLab.
//
// The model (Report) knows nothing of GitHub or GitLab. The text comes from
// text/template files embedded from templates/, covered by golden files
// (go test -update rewrites them). A comment starts with a hidden marker
// (Marker) naming the image without its tag or digest, so that a later run
// finds the comment of the same image again and updates it in place, while
// jobs of a matrix building several images each keep their own.
//
// Content: the image, its tags, digest and compressed size; the gate's
// verdict (or the build failure and the instruction that failed); the
// findings counted by severity, split into those from this change (layers
// the Dockerfile added) and those from the base image; new and fixed
// counts against the compared image; the ten most severe findings with
// their advisory links and the Dockerfile line or repository file they
// come from, the rest in a collapsible <details>; and the layer table.
// Title is the one-line verdict with the counts, for a check run's title;
// Truncate cuts a text at a line boundary to fit an API's limit.
package markdown
