package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Dockerfile is a parsed Dockerfile: its directives, the ARGs declared before
// the first FROM and its stages.
type Dockerfile struct {
	File     string   // the name used in locations, e.g. "Dockerfile"
	Syntax   string   // the "# syntax=" directive, empty when absent
	Escape   rune     // the escape token ('\\' unless "# escape=" says otherwise)
	MetaArgs []Arg    // ARG instructions before the first FROM, in order
	Stages   []*Stage // the stages, in order
}

// Arg is one ARG declaration (an ARG instruction may declare several).
type Arg struct {
	Key      string
	Value    *string // the default as written, nil when there is none
	Location Location
}

// Stage is one FROM and the instructions that follow it.
type Stage struct {
	Index    int
	Name     string // the AS name, lower case; empty when unnamed
	BaseName string // the FROM reference as written (before ARG expansion)
	Platform string // the FROM --platform value as written
	Location Location
	Commands []Command
}

// Command is one instruction with its place in the Dockerfile. The embedded
// value is one of the buildkit instructions types (*instructions.CopyCommand,
// *instructions.EnvCommand, ...).
type Command struct {
	instructions.Command
	Location Location
	// Original is the instruction's text as written (continuations joined).
	Original string
	// OnBuild is true for a command that comes from an ONBUILD trigger of the base image.
	OnBuild bool
}

// Parse parses the content of a Dockerfile. file is the name used in
// locations and errors. Every error is a *Error.
func Parse(data []byte, file string) (*Dockerfile, error) {
	if file == "" {
		file = "Dockerfile"
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{Location: Location{File: file}, Err: errors.New("the Dockerfile cannot be empty")}
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, locationError(file, err, Location{File: file})
	}
	df := &Dockerfile{File: file, Escape: res.EscapeToken}
	if syntax, _, _, ok := parser.DetectSyntax(data); ok {
		df.Syntax = syntax
	}
	for _, node := range res.AST.Children {
		loc := nodeLocation(file, node)
		v, err := instructions.ParseInstruction(node)
		if err != nil {
			return nil, &Error{Location: loc, Err: unwrapLocation(err)}
		}
		switch c := v.(type) {
		case *instructions.Stage:
			df.Stages = append(df.Stages, &Stage{
				Index:    len(df.Stages),
				Name:     c.Name,
				BaseName: c.BaseName,
				Platform: c.Platform,
				Location: loc,
			})
		case *instructions.ArgCommand:
			if len(df.Stages) == 0 {
				for _, a := range c.Args {
					df.MetaArgs = append(df.MetaArgs, Arg{Key: a.Key, Value: a.Value, Location: loc})
				}
				continue
			}
			df.addCommand(c, loc, node)
		case instructions.Command:
			if len(df.Stages) == 0 {
				return nil, &Error{Location: loc, Err: errors.New("no build stage in current context")}
			}
			df.addCommand(c, loc, node)
		default:
			return nil, &Error{Location: loc, Err: fmt.Errorf("%T is not a command type", v)}
		}
	}
	if len(df.Stages) == 0 {
		return nil, &Error{Location: Location{File: file}, Err: errors.New("dockerfile contains no stages to build")}
	}
	return df, nil
}

func (df *Dockerfile) addCommand(c instructions.Command, loc Location, node *parser.Node) {
	st := df.Stages[len(df.Stages)-1]
	st.Commands = append(st.Commands, Command{Command: c, Location: loc, Original: strings.TrimSpace(node.Original)})
}

// ParseTrigger parses an ONBUILD trigger expression (for example
// "COPY . /app") of a base image. loc is the location of the FROM
// instruction that uses the base, where errors point.
func ParseTrigger(expr string, loc Location) (Command, error) {
	res, err := parser.Parse(strings.NewReader(expr))
	if err != nil {
		return Command{}, &Error{Location: loc, Err: fmt.Errorf("parsing ONBUILD trigger %q: %w", expr, unwrapLocation(err))}
	}
	if len(res.AST.Children) != 1 {
		return Command{}, &Error{Location: loc, Err: errors.New("onbuild trigger should be a single expression")}
	}
	node := res.AST.Children[0]
	c, err := instructions.ParseCommand(node)
	if err != nil {
		return Command{}, &Error{Location: loc, Err: unwrapLocation(err)}
	}
	return Command{Command: c, Location: loc, Original: strings.TrimSpace(node.Original), OnBuild: true}, nil
}

func nodeLocation(file string, node *parser.Node) Location {
	return Location{File: file, Line: node.StartLine, EndLine: node.EndLine}
}

// locationError converts an error of the buildkit parser to an *Error,
// taking the line from the parser's location when it has one.
func locationError(file string, err error, fallback Location) error {
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		r := le.Locations[0]
		return &Error{Location: Location{File: file, Line: r[0].Start.Line, EndLine: r[len(r)-1].End.Line}, Err: unwrapLocation(err)}
	}
	return &Error{Location: fallback, Err: err}
}

// unwrapLocation drops buildkit's location wrapper (its message is the
// wrapped error's message) so that the location is said once, by *Error.
func unwrapLocation(err error) error {
	var le *parser.LocationError
	if errors.As(err, &le) && le.Unwrap() != nil {
		return le.Unwrap()
	}
	return err
}
