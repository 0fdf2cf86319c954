package gitcommit

import (
	"strings"
	"testing"
	"time"
)

func TestApplyDelta(t *testing.T) {
	t.Parallel()
	base := []byte("0123456789abcdef")
	big := []byte(strings.Repeat("x", 0x10000+3))
	for _, tc := range []struct {
		name  string
		base  []byte
		delta []byte
		want  string
		err   string
	}{
		{"copy and insert", base, []byte{16, 7, 0x91, 2, 3, 4, 'X', 'Y', 'Z', '!'}, "234XYZ!", ""},
		{"copy size 0 means 64 KiB", big, []byte{0x83, 0x80, 0x04, 0x80, 0x80, 0x04, 0x80}, strings.Repeat("x", 0x10000), ""},
		{"empty delta", base, nil, "", "truncated"},
		{"base size mismatch", base, []byte{15, 1, 1, 'a'}, "", "base of 15"},
		{"copy past base", base, []byte{16, 4, 0x91, 14, 4}, "", "copy out of range"},
		{"copy past result", base, []byte{16, 2, 0x91, 0, 4}, "", "copy out of range"},
		{"insert past delta", base, []byte{16, 4, 4, 'a'}, "", "insert out of range"},
		{"insert past result", base, []byte{16, 1, 2, 'a', 'b'}, "", "insert out of range"},
		{"reserved instruction", base, []byte{16, 1, 0}, "", "reserved"},
		{"truncated copy", base, []byte{16, 4, 0x91, 1}, "", "truncated"},
		{"short result", base, []byte{16, 4, 1, 'a'}, "", "header says 4"},
		{"result too large", base, []byte{16, 0x80, 0x80, 0x80, 0x01}, "", "more than"},
		{"size too long", base, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "", "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := applyDelta(tc.base, tc.delta)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("applyDelta error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("applyDelta = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCommitterTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, commit string
		want         int64
		err          string
	}{
		{"plain", "tree t\nauthor A <a> 1 +0000\ncommitter C D <c@d> 1700000000 +0100\n\nmsg\n", 1700000000, ""},
		{"gt in name", "committer C > D <c@d> 42 -0500\n", 42, ""},
		{"negative", "committer C <c> -5 +0000\n", -5, ""},
		{"only in message", "tree t\n\ncommitter C <c> 1 +0000\n", 0, "no committer line"},
		{"no email", "committer C 1 +0000\n", 0, "no <email>"},
		{"no zone", "committer C <c> 1\n", 0, "no time and time zone"},
		{"not a number", "committer C <c> soon +0000\n", 0, "not a number"},
		{"empty", "", 0, "no committer line"},
	} {
		got, err := committerTime([]byte(tc.commit))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error = %v, want one containing %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !got.Equal(time.Unix(tc.want, 0)) || got.Location() != time.UTC {
			t.Errorf("%s: committerTime = %v, %v; want %d UTC", tc.name, got, err, tc.want)
		}
	}
}

func TestValidRefName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"refs/heads/main":         true,
		"refs/heads/feature/x-1":  true,
		"refs/heads/../../config": false,
		"refs/heads/.hidden":      false,
		"refs//heads":             false,
		"HEAD":                    false,
		"/etc/passwd":             false,
		"refs/heads/a\\b":         false,
		"refs/heads/x.lock":       false,
	} {
		if got := validRefName(name); got != want {
			t.Errorf("validRefName(%q) = %v, want %v", name, got, want)
		}
	}
}
