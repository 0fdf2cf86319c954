package action

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
)

// secretSet holds the secret values of a run so that they are redacted from
// logs and errors, and masked on GitHub.
type secretSet struct {
	mu     sync.Mutex
	values []string
	onAdd  func(string) error // GitHub: AddMask
}

// add registers the secret v: its whole value and, when it has several
// lines, each line, so that a value printed line by line is redacted too
// (GitHub masks only single lines).
func (s *secretSet) add(v string) error {
	if !strings.Contains(v, "\n") {
		return s.addOne(v)
	}
	var errs []error
	for _, part := range append([]string{v}, strings.Split(v, "\n")...) {
		if part != v {
			part = strings.TrimSpace(part)
		}
		if err := s.addOne(part); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// addOne registers one value; only values without a newline are handed to
// onAdd (a GitHub workflow command is one line).
func (s *secretSet) addOne(v string) error {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	s.mu.Lock()
	for _, have := range s.values {
		if have == v {
			s.mu.Unlock()
			return nil
		}
	}
	s.values = append(s.values, v)
	s.mu.Unlock()
	if s.onAdd != nil && !strings.Contains(v, "\n") {
		return s.onAdd(v)
	}
	return nil
}

// maskFunc returns the function handed to the registry client for secrets
// it finds itself (tokens from the docker config, CI variables).
func (s *secretSet) maskFunc(log *slog.Logger) func(string) {
	return func(v string) {
		if err := s.add(v); err != nil {
			log.Warn("masking a secret failed", "error", err)
		}
	}
}

func (s *secretSet) redact(msg string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.values {
		msg = strings.ReplaceAll(msg, v, "***")
	}
	return msg
}

// cleanError makes err's message one line without secrets, keeping its
// exit code and chain.
func (s *secretSet) cleanError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := oneLine(s.redact(msg))
	if clean == msg {
		return err
	}
	return &ExitError{Code: ExitCode(err), Err: &cleanedError{msg: clean, err: err}}
}

type cleanedError struct {
	msg string
	err error
}

func (e *cleanedError) Error() string { return e.msg }
func (e *cleanedError) Unwrap() error { return e.err }

// redactHandler removes known secrets from every log record.
type redactHandler struct {
	next    slog.Handler
	secrets *secretSet
}

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.secrets.redact(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.attr(a)
	}
	return &redactHandler{next: h.next.WithAttrs(clean), secrets: h.secrets}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{next: h.next.WithGroup(name), secrets: h.secrets}
}

func (h *redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.secrets.redact(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]slog.Attr, len(g))
		for i, ga := range g {
			clean[i] = h.attr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.secrets.redact(err.Error()))
		}
		return slog.String(a.Key, h.secrets.redact(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// oneLine joins the lines of msg: after a colon with a space, else with
// "; ".
func oneLine(msg string) string {
	var b strings.Builder
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if b.Len() > 0 {
			if prev := b.String(); strings.HasSuffix(prev, ":") || strings.HasSuffix(prev, ";") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(line)
	}
	return b.String()
}
