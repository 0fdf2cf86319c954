package action

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-githubactions"
)

// Load reads the Config from args (the command line without the program
// name) and the environment seen through lookup, then validates it.
//
// Every input is read from the first of these that sets it: the flag
// --NAME (or its singular alias and short form), the GitHub Actions input
// INPUT_NAME, the variable SHIP_NAME, the default. An empty value counts as
// unset. SOURCE_DATE_EPOCH sets Config.SourceDateEpoch.
//
// The first argument may not be a word: that place is kept for subcommands.
// Errors are *ExitError values with CodeUsage. With --help, Load returns a
// Config with only Help set.
func Load(args []string, lookup LookupEnv) (Config, error) {
	c, err := parse(args, lookup)
	if err != nil {
		return Config{}, err
	}
	if c.Help {
		return c, nil
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// parse is Load without Validate.
func parse(args []string, lookup LookupEnv) (Config, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	inputs := Inputs()
	flags, help, err := parseFlags(args, inputs)
	if err != nil {
		return Config{}, &ExitError{Code: CodeUsage, Err: err}
	}
	if help {
		return Config{Help: true}, nil
	}
	gha := githubactions.New(githubactions.WithGetenv(func(k string) string {
		v, _ := lookup(k)
		return v
	}))
	var c Config
	for _, in := range inputs {
		var err error
		if raw, ok := flags[in.Name]; ok {
			err = in.set(&c, raw, false, lookup)
		} else if v := gha.GetInput(in.Name); v != "" {
			err = in.set(&c, []string{v}, true, lookup)
		} else if v, _ := lookup(in.EnvName()); strings.TrimSpace(v) != "" {
			err = in.set(&c, []string{v}, true, lookup)
		} else if in.Default != "" {
			err = in.set(&c, []string{in.Default}, true, lookup)
		}
		if err != nil {
			return Config{}, &ExitError{Code: CodeUsage, Err: err}
		}
	}
	c.resolveFile()
	if v, _ := lookup("SOURCE_DATE_EPOCH"); v != "" {
		sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || sec < 0 {
			return Config{}, usageErrorf("invalid SOURCE_DATE_EPOCH %q: want a non-negative integer (seconds)", v)
		}
		t := time.Unix(sec, 0).UTC()
		c.SourceDateEpoch = &t
	}
	return c, nil
}

// flagSpec is one flag name pointing at an input.
type flagSpec struct {
	input Input
	alias bool // the singular docker build name: map items are not split
}

// parseFlags reads args into raw values per input name. List values are
// split into items here; a singular map flag (--build-arg) is one item.
func parseFlags(args []string, inputs []Input) (map[string][]string, bool, error) {
	long := map[string]flagSpec{}
	short := map[string]flagSpec{}
	for _, in := range inputs {
		long[in.Name] = flagSpec{input: in}
		if in.Alias != "" {
			long[in.Alias] = flagSpec{input: in, alias: true}
		}
		if in.Short != "" {
			short[in.Short] = flagSpec{input: in, alias: true}
		}
	}
	out := map[string][]string{}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			if i+1 < len(args) {
				return nil, false, fmt.Errorf("unexpected argument %q", args[i+1])
			}
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			if i == 0 {
				return nil, false, fmt.Errorf("unknown command %q (see ship --help)", arg)
			}
			return nil, false, fmt.Errorf("unexpected argument %q (see ship --help)", arg)
		}
		var (
			spec     flagSpec
			flagName string
			value    string
			hasValue bool
			ok       bool
		)
		body := strings.TrimLeft(arg, "-")
		key, val, eq := strings.Cut(body, "=")
		switch {
		case key == "help" || key == "h":
			return nil, true, nil
		case strings.HasPrefix(arg, "--"):
			spec, ok = long[key]
			flagName, value, hasValue = "--"+key, val, eq
		default: // single dash: -t v, -t=v, -tv, or a long name (-tag v)
			if spec, ok = long[key]; ok {
				flagName, value, hasValue = "-"+key, val, eq
			} else if spec, ok = short[body[:1]]; ok {
				flagName = "-" + body[:1]
				rest := body[1:]
				value, hasValue = strings.TrimPrefix(rest, "="), rest != ""
			}
		}
		if !ok {
			return nil, false, fmt.Errorf("unknown flag %s (see ship --help)", arg)
		}
		in := spec.input
		if !hasValue {
			if in.Kind == KindBool {
				value = "true"
			} else {
				if i+1 >= len(args) {
					return nil, false, fmt.Errorf("flag %s needs a value", flagName)
				}
				i++
				value = args[i]
			}
		}
		switch in.Kind {
		case KindList:
			out[in.Name] = append(out[in.Name], splitItems(value, true, true)...)
		case KindMap, KindLines:
			out[in.Name] = append(out[in.Name], splitItems(value, !spec.alias, false)...)
		default:
			out[in.Name] = append(out[in.Name], value)
		}
	}
	return out, false, nil
}

// Usage returns the --help text: every input with its flags, variable and
// default.
func Usage() string {
	var b strings.Builder
	b.WriteString(`Usage: ship [flags]
       ship scan IMAGE [flags]
       ship merge IMAGE... --tag TAG [flags]

Builds a Dockerfile into an image without a Docker daemon, writes it as an
OCI image layout (and a tarball when asked), scans it with Trivy in process,
and pushes it when asked. "ship scan IMAGE" scans an image from a registry
with the same scan flags, outputs and exit codes. "ship merge" pushes one
multi-platform index of images built and pushed per platform (e.g. by a CI
matrix on native runners) to every --tag.

Every flag --NAME is also the GitHub Actions input NAME and the variable
SHIP_NAME. Precedence: flags, then action inputs, then SHIP_* variables,
then defaults. SOURCE_DATE_EPOCH sets the time of files and history.

Flags:
`)
	for _, in := range Inputs() {
		names := "--" + in.Name
		if in.Alias != "" {
			names = "--" + in.Alias + ", " + names
		}
		if in.Short != "" {
			names = "-" + in.Short + ", " + names
		}
		switch in.Kind {
		case KindString:
			names += " VALUE"
		case KindInt:
			names += " N"
		case KindList:
			names += " VALUE,..."
		case KindMap:
			names += " KEY=VALUE"
		case KindLines:
			names += " VALUE"
		}
		fmt.Fprintf(&b, "  %s\n      %s", names, in.Description)
		if in.Default != "" {
			fmt.Fprintf(&b, " (default %q)", in.Default)
		}
		fmt.Fprintf(&b, " [%s]\n", in.EnvName())
	}
	b.WriteString(`  -h, --help
      Print this help.

Exit codes: 0 ok, 1 findings fail the gate (fail-on), 2 bad usage or
configuration, 3 build failed, 4 push failed, 5 the scan could not run
(with fail-on set).
`)
	return b.String()
}
