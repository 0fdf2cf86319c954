package action

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// actionYML is the action metadata file, relative to this package.
const actionYML = "../action.yml"

type actionFile struct {
	Name    string                 `yaml:"name"`
	Inputs  map[string]actionInput `yaml:"inputs"`
	Outputs map[string]struct {
		Description string `yaml:"description"`
	} `yaml:"outputs"`
	Runs struct {
		Using string `yaml:"using"`
		Image string `yaml:"image"`
	} `yaml:"runs"`
}

type actionInput struct {
	Description string  `yaml:"description"`
	Default     *string `yaml:"default"`
	Required    bool    `yaml:"required"`
}

// schemasDir returns the directory of the shared schemas, or skips (fails
// under CI=true) when it is missing.
func schemasDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SHIP_SCHEMAS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "schemas")
	}
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("schemas directory %s missing (set SHIP_SCHEMAS_DIR): %v", dir, err)
		}
		t.Skipf("schemas directory %s missing (set SHIP_SCHEMAS_DIR); skipping", dir)
	}
	return dir
}

func TestActionYMLValidatesAgainstSchema(t *testing.T) {
	t.Parallel()
	dir := schemasDir(t)
	raw, err := os.ReadFile(actionYML)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parsing action.yml: %v", err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	loc, err := filepath.Abs(filepath.Join(dir, "github-action.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	sch, err := jsonschema.NewCompiler().Compile(loc)
	if err != nil {
		t.Fatalf("compiling schema: %v", err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("action.yml does not validate: %v", err)
	}

	// The check can fail: a broken copy must not validate.
	bad := map[string]any{"name": "x", "description": "y", "runs": map[string]any{"using": "docker"}}
	js, _ = json.Marshal(bad)
	inst, _ = jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err := sch.Validate(inst); err == nil {
		t.Error("a docker action without image validated")
	}
}

func TestActionYMLMatchesConfig(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(actionYML)
	if err != nil {
		t.Fatal(err)
	}
	var a actionFile
	if err := yaml.Unmarshal(raw, &a); err != nil {
		t.Fatalf("parsing action.yml: %v", err)
	}
	inputs := Inputs()
	for _, in := range inputs {
		t.Run("input "+in.Name, func(t *testing.T) {
			t.Parallel()
			ai, ok := a.Inputs[in.Name]
			if !ok {
				t.Fatalf("Config input %s is not in action.yml", in.Name)
			}
			if ai.Description != in.Description {
				t.Errorf("action.yml description %q, Config description %q", ai.Description, in.Description)
			}
			if ai.Default == nil {
				t.Fatal("no default in action.yml")
			}
			want := in.Default
			if in.ActionDefault != "" {
				want = in.ActionDefault
			}
			if *ai.Default != want {
				t.Errorf("action.yml default %q, Config default %q", *ai.Default, want)
			}
			if ai.Required {
				t.Error("inputs must not be required: every one has a default")
			}
		})
	}
	for name := range a.Inputs {
		if !slices.ContainsFunc(inputs, func(in Input) bool { return in.Name == name }) {
			t.Errorf("action.yml input %s is not read by Config", name)
		}
	}
	var outs []string
	for name := range a.Outputs {
		outs = append(outs, name)
	}
	slices.Sort(outs)
	if want := []string{"critical", "digest", "findings-json", "high", "image", "low", "medium", "metadata", "sarif-file", "sbom", "tags", "unknown"}; !slices.Equal(outs, want) {
		t.Errorf("outputs %v, want %v", outs, want)
	}
	if a.Runs.Using != "docker" || a.Runs.Image != "docker://ghcr.io/intesys/ship-action:v1" {
		t.Errorf("runs = %+v", a.Runs)
	}
}

// TestREADMEListsEveryInput keeps the README's input table in step with
// Config: every input has a row.
func TestREADMEListsEveryInput(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatalf("reading README.md: %v", err)
	}
	for _, in := range Inputs() {
		row := "| `" + in.Name + "` | `--" + in.Name + "`"
		if !strings.Contains(string(data), row) {
			t.Errorf("README.md has no row for input %s (want a line starting %q)", in.Name, row)
		}
	}
}
