package github

import (
	"context"
	"fmt"
	"strings"

	gh "github.com/google/go-github/v60/github"

	"github.com/intesys/ship-action/internal/report/markdown"
)

// MaxComment is the longest comment body GitHub accepts, in characters.
const MaxComment = 65536

// UpsertComment makes body the pull request's comment that carries marker:
// the first comment whose body contains marker is updated, else a comment
// is created. body is prefixed with marker when it lacks it, and cut to
// MaxComment with a note. It returns the comment's ID.
func (c *Client) UpsertComment(ctx context.Context, pr int, marker, body string) (int64, error) {
	if marker == "" {
		return 0, fmt.Errorf("commenting on pull request #%d: empty marker", pr)
	}
	if !strings.Contains(body, marker) {
		body = marker + "\n" + body
	}
	body = markdown.Truncate(body, MaxComment,
		"\n_This comment was cut to fit GitHub's limit: the job summary has all of it._")
	id, err := c.findComment(ctx, pr, marker)
	if err != nil {
		return 0, err
	}
	if id != 0 {
		if _, _, err := c.gh.Issues.EditComment(ctx, c.owner, c.repo, id, &gh.IssueComment{Body: gh.String(body)}); err != nil {
			return 0, apiError(fmt.Sprintf("updating comment %d on pull request #%d", id, pr), PermissionPullRequests, err)
		}
		return id, nil
	}
	cm, _, err := c.gh.Issues.CreateComment(ctx, c.owner, c.repo, pr, &gh.IssueComment{Body: gh.String(body)})
	if err != nil {
		return 0, apiError(fmt.Sprintf("commenting on pull request #%d", pr), PermissionPullRequests, err)
	}
	return cm.GetID(), nil
}

// findComment returns the ID of the first comment of pr containing marker,
// 0 when there is none.
func (c *Client) findComment(ctx context.Context, pr int, marker string) (int64, error) {
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		cms, resp, err := c.gh.Issues.ListComments(ctx, c.owner, c.repo, pr, opts)
		if err != nil {
			return 0, apiError(fmt.Sprintf("listing comments of pull request #%d", pr), PermissionPullRequests, err)
		}
		for _, cm := range cms {
			if strings.Contains(cm.GetBody(), marker) {
				return cm.GetID(), nil
			}
		}
		if resp.NextPage == 0 {
			return 0, nil
		}
		opts.Page = resp.NextPage
	}
}
