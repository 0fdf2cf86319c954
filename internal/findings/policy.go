package findings

import "slices"

// Policy decides which findings are reported and which fail the run. The
// zero Policy reports everything and fails on nothing.
type Policy struct {
	// Severity lists the severities that are reported; empty means all.
	Severity []Severity
	// FailOn lists the severities that fail the run; empty means report
	// only.
	FailOn []Severity
	// IgnoreUnfixed drops vulnerabilities that have no fixed version, from
	// the report and from the gate. Secrets and misconfigurations have no
	// fixed version and are never dropped by it.
	IgnoreUnfixed bool
	// IgnoreBase reports findings from the base image but does not fail the
	// run on them.
	IgnoreBase bool
	// NewOnly fails the run only on findings that are new against the
	// compared image (Diff). Findings without a status (no comparison was
	// made) count as new: without a baseline, everything is new.
	NewOnly bool
}

// Filter returns the findings the report shows: those with a reported
// severity, without the unfixed vulnerabilities when IgnoreUnfixed is set.
// Fixed findings (Status fixed) pass when their severity is reported, so a
// report can show what the change fixed. The input is not modified.
func (p Policy) Filter(fs []Finding) []Finding {
	out := make([]Finding, 0, len(fs))
	for _, f := range fs {
		if len(p.Severity) > 0 && !slices.Contains(p.Severity, f.Severity) {
			continue
		}
		if p.IgnoreUnfixed && f.Kind == KindVulnerability && f.FixedVersion == "" {
			continue
		}
		out = append(out, f)
	}
	return out
}

// Gate returns the findings that fail the run; an empty result means the run
// passes. Only findings the report shows (Filter) can fail it, so a failing
// run always shows its cause. Of those, a finding fails the run when its
// severity is in FailOn, it is not fixed, it is not from the base image when
// IgnoreBase is set, and it is new (or has no status) when NewOnly is set.
func (p Policy) Gate(fs []Finding) []Finding {
	if len(p.FailOn) == 0 {
		return nil
	}
	var out []Finding
	for _, f := range p.Filter(fs) {
		switch {
		case !slices.Contains(p.FailOn, f.Severity):
		case f.Status == StatusFixed:
		case p.IgnoreBase && f.Origin == OriginBase:
		case p.NewOnly && f.Status != StatusNew && f.Status != "":
		default:
			out = append(out, f)
		}
	}
	return out
}

// Diff classifies current against previous, the findings of the image
// compared to: a current finding whose Key is among previous is unchanged,
// otherwise new; a previous finding whose Key is not among current is added
// with status fixed (its fields as they were in the previous image). The
// result holds current's findings in their order, then the fixed ones in
// previous's order. The inputs are not modified.
func Diff(current, previous []Finding) []Finding {
	prev := make(map[string]bool, len(previous))
	for _, f := range previous {
		prev[f.Key()] = true
	}
	cur := make(map[string]bool, len(current))
	out := make([]Finding, 0, len(current))
	for _, f := range current {
		cur[f.Key()] = true
		f.Status = StatusNew
		if prev[f.Key()] {
			f.Status = StatusUnchanged
		}
		out = append(out, f)
	}
	fixed := make(map[string]bool)
	for _, f := range previous {
		k := f.Key()
		if cur[k] || fixed[k] {
			continue
		}
		fixed[k] = true
		f.Status = StatusFixed
		out = append(out, f)
	}
	return out
}
