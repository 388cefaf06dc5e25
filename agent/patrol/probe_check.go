package patrol

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/gopatrol/gopatrol/agent/check"
)

// CheckRunner gives check rules the doctor's checks.
type CheckRunner interface {
	// IDs lists every check ID a rule can name.
	IDs() []string
	// Run runs the checks with these IDs and returns their results.
	Run(ctx context.Context, ids []string) []check.Result
}

// Doctor is the CheckRunner over a check catalogue: the same checks, Env
// and Runner as `gopatrol check`.
type Doctor struct {
	Env    *check.Env
	Checks []check.Check
	Runner check.Runner
	// SkipSlow answers skip for slow checks instead of running them (the
	// incremental patrol; the full one at 02:00 runs them).
	SkipSlow bool
}

// IDs lists the catalogue's check IDs.
func (d Doctor) IDs() []string {
	ids := make([]string, len(d.Checks))
	for i, c := range d.Checks {
		ids[i] = c.ID
	}
	return ids
}

// Run runs the named checks.
func (d Doctor) Run(ctx context.Context, ids []string) []check.Result {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var cs []check.Check
	var skipped []check.Result
	for _, c := range d.Checks {
		switch {
		case !want[c.ID]:
		case c.Slow && d.SkipSlow:
			skipped = append(skipped, check.Result{ID: c.ID, Title: c.Title, Source: c.Source, Status: check.Skip,
				Summary: "slow check, left to the full patrol"})
		default:
			cs = append(cs, c)
		}
	}
	return append(d.Runner.Run(ctx, d.Env, cs), skipped...)
}

// CheckValue is the value of a check result in a check rule: pass and skip
// 0, warn 1, fail 2. The default threshold ge(2) breaches on failures;
// ge(1) takes warnings in too.
func CheckValue(s check.Status) (float64, bool) {
	switch s {
	case check.Pass, check.Skip:
		return 0, true
	case check.Warn:
		return 1, true
	case check.Fail:
		return 2, true
	}
	return 0, false
}

func matchChecks(ids []string, glob string) []string {
	var out []string
	for _, id := range ids {
		if ok, _ := filepath.Match(glob, id); ok {
			out = append(out, id)
		}
	}
	return out
}

type checkProbe struct {
	ids    []string
	checks CheckRunner
}

func (p checkProbe) Probe(ctx context.Context) []Sample {
	results := p.checks.Run(ctx, p.ids)
	out := make([]Sample, 0, len(results))
	for _, r := range results {
		s := Sample{Labels: map[string]string{"check": r.ID}, Message: r.Summary}
		v, ok := CheckValue(r.Status)
		if ok {
			s.Value = v
		} else {
			s.Err = errors.New("check could not run: " + r.Summary)
		}
		out = append(out, s)
	}
	return out
}
