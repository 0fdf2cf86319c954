package action

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// The GitLab CI/CD component and this repository's GitLab pipeline,
// relative to this package.
const (
	componentYML = "../templates/ship.yml"
	gitlabCIYML  = "../.gitlab-ci.yml"
)

// componentDefaults are the inputs whose component default differs from
// Config's: GitLab's environment provides a better one.
var componentDefaults = map[string]string{
	"context": "$CI_PROJECT_DIR",
	"tags":    "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA,$CI_REGISTRY_IMAGE:$CI_COMMIT_REF_SLUG",
	"push":    "true",
}

// componentOptions are the inputs with a closed set of values.
var componentOptions = map[string][]string{
	"sbom":    {"", "cyclonedx", "spdx"},
	"comment": {commentAlways, commentNever, commentOnFailure},
}

// componentExtras are the component's own inputs, with their defaults and
// the SHIP_* variable they set ("" for none: they shape the job).
var componentExtras = map[string]struct{ def, env string }{
	"image":        {"ghcr.io/intesys/ship-action:v1", ""},
	"stage":        {"build", ""},
	"job-name":     {"ship", ""},
	"gitlab-token": {"", "SHIP_GITLAB_TOKEN"},
}

type componentSpec struct {
	Spec struct {
		Inputs map[string]componentInput `yaml:"inputs"`
	} `yaml:"spec"`
}

type componentInput struct {
	Description string    `yaml:"description"`
	Type        string    `yaml:"type"`
	Default     yaml.Node `yaml:"default"`
	Options     []string  `yaml:"options"`
}

type componentJob struct {
	Image struct {
		Name       string   `yaml:"name"`
		Entrypoint []string `yaml:"entrypoint"`
	} `yaml:"image"`
	Stage     string            `yaml:"stage"`
	Variables map[string]string `yaml:"variables"`
	Script    []string          `yaml:"script"`
	Artifacts struct {
		When    string            `yaml:"when"`
		Paths   []string          `yaml:"paths"`
		Reports map[string]string `yaml:"reports"`
	} `yaml:"artifacts"`
}

// yamlDocuments returns the YAML documents of the file at path.
func yamlDocuments(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("parsing %s: %v", path, err)
		}
		docs = append(docs, &n)
	}
}

// jsonCompatible turns a decoded YAML value into one encoding/json accepts.
func jsonCompatible(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsonCompatible(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = jsonCompatible(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonCompatible(e)
		}
		return out
	}
	return v
}

// gitlabCISchema compiles GitLab's .gitlab-ci.yml schema.
func gitlabCISchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	loc, err := filepath.Abs(filepath.Join(schemasDir(t), "gitlab-ci.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	sch, err := jsonschema.NewCompiler().Compile(loc)
	if err != nil {
		t.Fatalf("compiling schema: %v", err)
	}
	return sch
}

// validateYAML validates one decoded YAML document against sch.
func validateYAML(sch *jsonschema.Schema, doc any) error {
	js, err := json.Marshal(jsonCompatible(doc))
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

func TestGitLabComponentValidatesAgainstSchema(t *testing.T) {
	t.Parallel()
	sch := gitlabCISchema(t)
	docs := yamlDocuments(t, componentYML)
	if len(docs) != 2 {
		t.Fatalf("%s has %d YAML documents, want 2 (the spec header, ---, the job)", componentYML, len(docs))
	}
	var decoded []any
	for i, n := range docs {
		var doc any
		if err := n.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if err := validateYAML(sch, doc); err != nil {
			t.Errorf("document %d of %s does not validate: %v", i+1, componentYML, err)
		}
		decoded = append(decoded, doc)
	}
	if _, ok := decoded[0].(map[string]any)["spec"]; !ok {
		t.Error("the first document is not the spec: header")
	}

	// The check can fail: a description over GitLab's 1024 characters and
	// an unknown artifacts:when must not validate.
	long := map[string]any{"spec": map[string]any{"inputs": map[string]any{
		"x": map[string]any{"description": strings.Repeat("x", 1025)},
	}}}
	if err := validateYAML(sch, long); err == nil {
		t.Error("an input description of 1025 characters validated")
	}
	bad := map[string]any{"job": map[string]any{
		"script":    []any{"true"},
		"artifacts": map[string]any{"when": "sometimes"},
	}}
	if err := validateYAML(sch, bad); err == nil {
		t.Error("artifacts:when: sometimes validated")
	}
}

func TestGitLabComponentMatchesConfig(t *testing.T) {
	t.Parallel()
	docs := yamlDocuments(t, componentYML)
	if len(docs) != 2 {
		t.Fatalf("%s has %d YAML documents, want 2", componentYML, len(docs))
	}
	var spec componentSpec
	if err := docs[0].Decode(&spec); err != nil {
		t.Fatalf("decoding the spec: %v", err)
	}
	var jobs map[string]componentJob
	if err := docs[1].Decode(&jobs); err != nil {
		t.Fatalf("decoding the job: %v", err)
	}
	job, ok := jobs["$[[ inputs.job-name ]]"]
	if len(jobs) != 1 || !ok {
		t.Fatalf("jobs %v, want the one job $[[ inputs.job-name ]]", slices.Sorted(maps.Keys(jobs)))
	}
	inputs := spec.Spec.Inputs

	// Exactly Config's inputs plus the component's own.
	var want []string
	for _, in := range Inputs() {
		want = append(want, in.Name)
	}
	for name := range componentExtras {
		if !slices.Contains(want, name) {
			want = append(want, name)
		}
	}
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(inputs)); !slices.Equal(got, want) {
		t.Errorf("component inputs\n got %v\nwant %v", got, want)
	}

	for _, in := range Inputs() {
		t.Run("input "+in.Name, func(t *testing.T) {
			ci, ok := inputs[in.Name]
			if !ok {
				t.Fatalf("Config input %s is not in %s", in.Name, componentYML)
			}
			if !strings.HasPrefix(ci.Description, in.Description) {
				t.Errorf("description %q does not start with Config's %q", ci.Description, in.Description)
			}
			if len(ci.Description) > 1024 {
				t.Errorf("description has %d characters, GitLab allows 1024", len(ci.Description))
			}
			typ, tag, ref := "string", "!!str", "$[[ inputs."+in.Name+" ]]"
			switch in.Kind {
			case KindBool:
				// A whole-value interpolation keeps the boolean type, and a
				// variable may not be a boolean: the space makes it a string.
				typ, tag, ref = "boolean", "!!bool", " "+ref
			case KindInt:
				typ, tag, ref = "number", "!!int", " "+ref
			}
			if ci.Type != typ {
				t.Errorf("type %q, want %q", ci.Type, typ)
			}
			if ci.Default.Kind == 0 {
				t.Fatal("no default: the input would be required")
			}
			if ci.Default.Tag != tag {
				t.Errorf("default %q has tag %s, want %s", ci.Default.Value, ci.Default.Tag, tag)
			}
			def, gitlab := componentDefaults[in.Name]
			if !gitlab {
				def = in.Default
			}
			if ci.Default.Value != def {
				t.Errorf("default %q, want %q", ci.Default.Value, def)
			}
			if in.Secret && ci.Default.Value != "" {
				t.Errorf("secret input has the default %q", ci.Default.Value)
			}
			if opts, ok := componentOptions[in.Name]; ok {
				if !slices.Equal(ci.Options, opts) {
					t.Errorf("options %q, want %q", ci.Options, opts)
				}
			} else if ci.Options != nil {
				t.Errorf("options %q on an input without a closed set (add it to componentOptions)", ci.Options)
			}
			if ci.Options != nil && !slices.Contains(ci.Options, ci.Default.Value) {
				t.Errorf("default %q is not one of the options %q", ci.Default.Value, ci.Options)
			}
			if got, ok := job.Variables[in.EnvName()]; !ok || got != ref {
				t.Errorf("variable %s = %q (set %v), want %q", in.EnvName(), got, ok, ref)
			}
		})
	}

	vars := 0
	for _, in := range Inputs() {
		if _, ok := job.Variables[in.EnvName()]; ok {
			vars++
		}
	}
	for name, x := range componentExtras {
		if slices.ContainsFunc(Inputs(), func(in Input) bool { return in.Name == name }) {
			continue // Config reads it now: checked above
		}
		ci := inputs[name]
		if ci.Type != "string" || ci.Default.Kind == 0 || ci.Default.Value != x.def {
			t.Errorf("input %s: type %q default %q, want a string defaulting to %q", name, ci.Type, ci.Default.Value, x.def)
		}
		if ci.Description == "" || len(ci.Description) > 1024 {
			t.Errorf("input %s: description of %d characters", name, len(ci.Description))
		}
		if x.env == "" {
			continue
		}
		if got := job.Variables[x.env]; got != "$[[ inputs."+name+" ]]" {
			t.Errorf("variable %s = %q, want $[[ inputs.%s ]]", x.env, got, name)
		}
		vars++
	}
	if vars != len(job.Variables) {
		t.Errorf("the job sets %d variables, %d of them for inputs: %v", len(job.Variables), vars, slices.Sorted(maps.Keys(job.Variables)))
	}
	if secret := inputs["gitlab-token"].Default.Value; secret != "" {
		t.Errorf("gitlab-token has the default %q", secret)
	}

	// The job runs the image's binary, and keeps the reports on failure.
	if job.Image.Name != "$[[ inputs.image ]]" || !slices.Equal(job.Image.Entrypoint, []string{""}) {
		t.Errorf("image %+v, want $[[ inputs.image ]] with an empty entrypoint", job.Image)
	}
	if job.Stage != "$[[ inputs.stage ]]" {
		t.Errorf("stage %q", job.Stage)
	}
	dockerfile, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(job.Script) != 1 || !strings.Contains(string(dockerfile), `ENTRYPOINT ["`+job.Script[0]+`"]`) {
		t.Errorf("script %q does not run the Dockerfile's ENTRYPOINT", job.Script)
	}
	a := job.Artifacts
	if a.When != "always" {
		t.Errorf("artifacts:when %q, want always", a.When)
	}
	for _, p := range []string{"$[[ inputs.findings-json ]]", "$[[ inputs.sarif-file ]]"} {
		if !slices.Contains(a.Paths, p) {
			t.Errorf("artifacts:paths %q lack %s", a.Paths, p)
		}
	}
	wantReports := map[string]string{
		"container_scanning": "gl-container-scanning-report.json",
		"codequality":        "gl-code-quality-report.json",
		"dotenv":             dotenvFile,
		"cyclonedx":          "gl-sbom-report.cdx.json",
	}
	if !maps.Equal(a.Reports, wantReports) {
		t.Errorf("artifacts:reports %v, want %v", a.Reports, wantReports)
	}
}

func TestGitLabCIValidatesAgainstSchema(t *testing.T) {
	t.Parallel()
	sch := gitlabCISchema(t)
	docs := yamlDocuments(t, gitlabCIYML)
	if len(docs) != 1 {
		t.Fatalf("%s has %d YAML documents, want 1", gitlabCIYML, len(docs))
	}
	var doc map[string]any
	if err := docs[0].Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if err := validateYAML(sch, doc); err != nil {
		t.Errorf("%s does not validate: %v", gitlabCIYML, err)
	}
	var pipeline struct {
		Release struct {
			Release struct {
				TagName     string `yaml:"tag_name"`
				Description string `yaml:"description"`
			} `yaml:"release"`
		} `yaml:"release"`
	}
	if err := docs[0].Decode(&pipeline); err != nil {
		t.Fatal(err)
	}
	if r := pipeline.Release.Release; r.TagName != "$CI_COMMIT_TAG" || r.Description == "" {
		t.Errorf("release job's release %+v, want tag_name $CI_COMMIT_TAG and a description", r)
	}

	// The check can fail: a release without tag_name must not validate.
	doc["release"].(map[string]any)["release"] = map[string]any{"description": "x"}
	if err := validateYAML(sch, doc); err == nil {
		t.Error("a release without tag_name validated")
	}
}
