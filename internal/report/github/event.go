package github

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// HeadSHA returns the commit a check run belongs on and the pull request
// number (0 when the event is not a pull request), from the event payload
// at eventPath (GITHUB_EVENT_PATH). On pull_request and pull_request_target
// events it is the pull request's head commit (GITHUB_SHA is then a merge
// commit no one sees); on push events the pushed commit ("after");
// otherwise, or when eventPath is "", githubSHA (GITHUB_SHA).
func HeadSHA(eventPath, githubSHA string) (sha string, pr int, err error) {
	if eventPath == "" {
		return githubSHA, 0, nil
	}
	b, err := os.ReadFile(eventPath)
	if err != nil {
		return "", 0, fmt.Errorf("reading event payload: %w", err)
	}
	var ev struct {
		Number      int `json:"number"`
		PullRequest *struct {
			Number int `json:"number"`
			Head   struct {
				SHA string `json:"sha"`
			} `json:"head"`
		} `json:"pull_request"`
		After string `json:"after"`
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return "", 0, fmt.Errorf("parsing event payload %s: %w", eventPath, err)
	}
	if pr := ev.PullRequest; pr != nil && pr.Head.SHA != "" {
		n := pr.Number
		if n == 0 {
			n = ev.Number
		}
		return pr.Head.SHA, n, nil
	}
	// A deleted branch pushes "after" as zeros.
	if ev.After != "" && strings.Trim(ev.After, "0") != "" {
		return ev.After, 0, nil
	}
	return githubSHA, 0, nil
}

// FromFork reports whether the event payload at eventPath is a pull
// request whose head is in another repository than its base (a fork);
// false when it is no pull request or cannot be read.
func FromFork(eventPath string) bool {
	if eventPath == "" {
		return false
	}
	b, err := os.ReadFile(eventPath)
	if err != nil {
		return false
	}
	type repo struct {
		FullName string `json:"full_name"`
	}
	var ev struct {
		PullRequest *struct {
			Head struct{ Repo *repo } `json:"head"`
			Base struct{ Repo *repo } `json:"base"`
		} `json:"pull_request"`
	}
	if json.Unmarshal(b, &ev) != nil || ev.PullRequest == nil || ev.PullRequest.Head.Repo == nil || ev.PullRequest.Base.Repo == nil {
		return false
	}
	return ev.PullRequest.Head.Repo.FullName != ev.PullRequest.Base.Repo.FullName
}
