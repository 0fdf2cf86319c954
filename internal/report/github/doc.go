// Package github reports a build and scan result to GitHub through the REST
// API (go-github): a check run on the pull request's head commit with
// annotations on the Dockerfile lines and repository files the findings
// come from, one pull request comment per image updated in place, and the
// SARIF upload to code scanning.
//
// Annotations (Annotations) group the findings of one line into one
// annotation, at the level of the most severe (CRITICAL and HIGH failure,
// MEDIUM warning, LOW and UNKNOWN notice), and FinishCheck sends them 50 per
// request (the API's limit) up to a cap, saying in the summary how many
// were left out.
//
// Tokens of pull requests from forks are read-only: the API answers 403
// "Resource not accessible by integration". Every call turns such an
// answer (and a 404, which GitHub gives for resources a token may not see)
// into a *PermissionError naming the permission to add to the workflow
// (checks: write, pull-requests: write, security-events: write), so the
// caller can warn once and fall back to workflow commands
// (WorkflowCommands): ::error file=…,line=…:: lines, the most severe first,
// at most ten per level as GitHub shows, and one notice counting the rest.
//
// Server errors (5xx), 429 and the secondary rate limit are retried a
// bounded number of times with exponential backoff, honouring Retry-After
// (and the primary limit's reset time when it is near).
package github
