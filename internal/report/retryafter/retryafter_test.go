package retryafter

import (
	"context"
	"net/http"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	future := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	for _, tt := range []struct {
		in     string
		min    time.Duration
		max    time.Duration
		wantOK bool
	}{
		{"", 0, 0, false},
		{"7", 7 * time.Second, 7 * time.Second, true},
		{" 0 ", 0, 0, true},
		{"-3", 0, 0, false},
		{"soon", 0, 0, false},
		{future, 80 * time.Second, 91 * time.Second, true},
		{"Mon, 01 Jan 2001 00:00:00 GMT", 0, 0, true},
	} {
		d, ok := Parse(tt.in)
		if ok != tt.wantOK || d < tt.min || d > tt.max {
			t.Errorf("Parse(%q) = %v, %v; want %v in [%v, %v]", tt.in, d, ok, tt.wantOK, tt.min, tt.max)
		}
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); err == nil || time.Since(start) > time.Second {
		t.Errorf("Sleep on a cancelled context: %v after %v", err, time.Since(start))
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep: %v", err)
	}
}
