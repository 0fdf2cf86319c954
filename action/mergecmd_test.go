package action

import (
	"strings"
	"testing"
)

func TestLoadMerge(t *testing.T) {
	t.Parallel()
	env := func(string) (string, bool) { return "", false }
	cfg, err := LoadMerge([]string{"reg.example/app:amd64", "reg.example/app:arm64", "--tag", "reg.example/app:1"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.MergeImages) != 2 || !cfg.Push || cfg.Scan || len(cfg.Tags) != 1 {
		t.Errorf("config %+v", cfg)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--tag", "reg.example/app:1"}, "ship merge needs images"},
		{[]string{"reg.example/app:amd64"}, "at least one --tag"},
		{[]string{"Bad Ref!", "--tag", "reg.example/app:1"}, "invalid image reference"},
	} {
		_, err := LoadMerge(tt.args, env)
		if err == nil || !strings.Contains(err.Error(), tt.want) || ExitCode(err) != CodeUsage {
			t.Errorf("LoadMerge(%q) = %v (code %d), want %q, usage", tt.args, err, ExitCode(err), tt.want)
		}
	}
}
