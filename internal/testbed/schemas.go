package testbed

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// SchemasDir returns the directory of the official schemas the outputs are
// checked against: $SHIP_SCHEMAS_DIR, else ../shared/schemas next to the
// repository root (the directory holding go.mod). When it is missing the
// test fails under CI=true and is skipped otherwise.
func SchemasDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("SHIP_SCHEMAS_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "..", "shared", "schemas")
	}
	if _, err := os.Stat(dir); dir == "" || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("schemas directory %q missing (set SHIP_SCHEMAS_DIR)", dir)
		}
		t.Skipf("schemas directory %q missing (set SHIP_SCHEMAS_DIR); skipping", dir)
	}
	return dir
}

// ValidateJSON checks the JSON document data against the schema file name
// in SchemasDir and fails the test with the validation error.
func ValidateJSON(t testing.TB, name string, data []byte) {
	t.Helper()
	loc, err := filepath.Abs(filepath.Join(SchemasDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	sch, err := jsonschema.NewCompiler().Compile(loc)
	if err != nil {
		t.Fatalf("compiling schema %s: %v", name, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parsing the document: %v", err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("document does not validate against %s: %v", name, err)
	}
}
