package gitcommit

import (
	"fmt"
	"time"
)

// HeadTime returns the committer time of HEAD of the repository that
// contains dir (dir or a parent has .git), and the commit's hex id.
func HeadTime(dir string) (t time.Time, commit string, err error) {
	r, err := openRepo(dir)
	if err != nil {
		return time.Time{}, "", err
	}
	id, err := r.resolveHead()
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%s: %w", r.gitDir, err)
	}
	t, err = r.commitTime(id)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%s: %w", r.gitDir, err)
	}
	return t, id, nil
}
