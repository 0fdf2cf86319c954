package action

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// maxSecretSize is the largest secret accepted, as BuildKit's
// secretsprovider.MaxSecretSize.
const maxSecretSize = 500 * 1024

// secretSpec is one --secret item: where the value of secret id comes from.
// Exactly one of file and env is set once resolved.
type secretSpec struct {
	id   string
	file string
	env  string
}

// parseSecretSpec parses a --secret item as docker build (buildctl) does:
// comma-separated key=value fields id, src|source, env and type=file|env
// (with type=env, src names the variable). Errors never quote the item: a
// user may have put a value there.
func parseSecretSpec(s string) (secretSpec, error) {
	r := csv.NewReader(strings.NewReader(s))
	r.TrimLeadingSpace = true
	fields, err := r.Read()
	if err != nil {
		return secretSpec{}, errors.New("want id=ID,src=FILE or id=ID,env=VAR")
	}
	var spec secretSpec
	var typ string
	for i, field := range fields {
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			return secretSpec{}, fmt.Errorf("field %d is not key=value (want id=ID,src=FILE or id=ID,env=VAR)", i+1)
		}
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "type":
			if value != "file" && value != "env" {
				return secretSpec{}, errors.New("unsupported type (want type=file or type=env)")
			}
			typ = value
		case "id":
			spec.id = value
		case "source", "src":
			spec.file = value
		case "env":
			spec.env = value
		default:
			return secretSpec{}, fmt.Errorf("unexpected key %q (want id, src, env or type)", key)
		}
	}
	if typ == "env" && spec.env == "" {
		spec.env, spec.file = spec.file, ""
	}
	switch {
	case spec.id == "":
		return secretSpec{}, errors.New("missing id")
	case spec.file != "" && spec.env != "":
		return secretSpec{}, errors.New("set src or env, not both")
	case typ == "file" && spec.env != "":
		return secretSpec{}, errors.New("type=file takes src, not env")
	}
	return spec, nil
}

// parseSecretSpecs parses every --secret item; an id may appear once.
func parseSecretSpecs(items []string) ([]secretSpec, error) {
	seen := map[string]bool{}
	out := make([]secretSpec, 0, len(items))
	for i, item := range items {
		spec, err := parseSecretSpec(item)
		if err != nil {
			return nil, fmt.Errorf("invalid secret (item %d of secrets): %w", i+1, err)
		}
		if seen[spec.id] {
			return nil, fmt.Errorf("secret %s is given twice", spec.id)
		}
		seen[spec.id] = true
		out = append(out, spec)
	}
	return out, nil
}

// readSecrets reads the value of every secret once: a file (src) or an
// environment variable (env); a bare id=X takes the variable X when set,
// else the file X, as docker build does. Errors name the secret's id and
// source, never a value, and are *ExitError with CodeUsage.
func readSecrets(items []string, lookup LookupEnv) (map[string][]byte, error) {
	specs, err := parseSecretSpecs(items)
	if err != nil {
		return nil, &ExitError{Code: CodeUsage, Err: err}
	}
	if len(specs) == 0 {
		return nil, nil
	}
	out := make(map[string][]byte, len(specs))
	for _, spec := range specs {
		if spec.file == "" && spec.env == "" {
			if _, ok := lookup(spec.id); ok {
				spec.env = spec.id
			} else {
				spec.file = spec.id
			}
		}
		var v []byte
		if spec.env != "" {
			s, ok := lookup(spec.env)
			if !ok {
				return nil, usageErrorf("secret %s: environment variable %s is not set", spec.id, spec.env)
			}
			v = []byte(s)
		} else {
			v, err = readSecretFile(spec.file)
			if err != nil {
				return nil, usageErrorf("secret %s: %v", spec.id, err)
			}
		}
		if len(v) > maxSecretSize {
			return nil, usageErrorf("secret %s is too big (more than %d bytes)", spec.id, maxSecretSize)
		}
		out[spec.id] = v
	}
	return out, nil
}

// readSecretFile reads a secret file, at most maxSecretSize+1 bytes. Its
// errors name the file and the cause once.
func readSecretFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("file %s does not exist", name)
	}
	if err != nil {
		return nil, fmt.Errorf("opening file %s: %w", name, cause(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading file %s: %w", name, err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a file", name)
	}
	v, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading file %s: %w", name, cause(err))
	}
	return v, nil
}

// cause returns the reason of a *fs.PathError (its path is named by the
// caller), or err.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
