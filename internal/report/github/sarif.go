package github

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"

	gh "github.com/google/go-github/v60/github"
)

// UploadSARIF uploads a SARIF log to code scanning for commit sha on ref
// ("refs/heads/main", "refs/pull/7/head"), gzip-compressed and
// base64-encoded as the API wants. It returns the upload's ID.
func (c *Client) UploadSARIF(ctx context.Context, ref, sha string, sarif []byte) (string, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(sarif); err != nil {
		return "", fmt.Errorf("compressing SARIF: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("compressing SARIF: %w", err)
	}
	id, _, err := c.gh.CodeScanning.UploadSarif(ctx, c.owner, c.repo, &gh.SarifAnalysis{
		CommitSHA: gh.String(sha),
		Ref:       gh.String(ref),
		Sarif:     gh.String(base64.StdEncoding.EncodeToString(buf.Bytes())),
		ToolName:  gh.String("ship"),
	})
	if err != nil {
		return "", apiError("uploading SARIF to code scanning", PermissionSecurityEvents, err)
	}
	return id.GetID(), nil
}
