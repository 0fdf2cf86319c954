// Package retryafter reads the Retry-After header of an HTTP answer and
// waits as long as it says, for the clients of the report APIs (GitHub,
// GitLab) that retry rate-limited and failed requests.
package retryafter

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Parse parses a Retry-After value, in seconds or as an HTTP date (a date
// in the past is 0); ok is false when v is empty or neither.
func Parse(v string) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// Sleep waits d or until ctx is done, and returns ctx's error then.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
