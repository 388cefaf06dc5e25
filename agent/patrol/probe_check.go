package patrol

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"

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
	scope  Scope
	envs   EnvironmentSource
}

func (p checkProbe) Probe(ctx context.Context) []Sample {
	var out []Sample
	if p.scope.Host() {
		for _, r := range p.checks.Run(ctx, p.ids) {
			out = append(out, checkSample(r, nil, nil))
		}
	}
	if p.scope.Environments() && p.envs != nil {
		out = append(out, p.envSamples()...)
	}
	return out
}

// checkSample is the sample of one check result: value 0, 1 or 2, or an
// error when the check could not run.
func checkSample(r check.Result, labels, annotations map[string]string) Sample {
	s := Sample{Labels: map[string]string{"check": r.ID}, Message: r.Summary, Annotations: annotations}
	maps.Copy(s.Labels, labels)
	if v, ok := CheckValue(r.Status); ok {
		s.Value = v
	} else {
		s.Err = errors.New("check could not run: " + r.Summary)
	}
	return s
}

// envSamples are the rule's samples from each environment's latest
// patrol: one per matched check it ran, labelled with the environment's
// ID. An environment that could not be entered gives errors, which keep
// each series' last state: unreachable is not healthy.
func (p checkProbe) envSamples() []Sample {
	var out []Sample
	for _, env := range p.envs.Environments() {
		labels := map[string]string{LabelEnvironment: env.ID}
		if env.Unknown != "" {
			for _, id := range p.ids {
				s := Sample{Labels: map[string]string{"check": id, LabelEnvironment: env.ID}, Annotations: env.Identity,
					Err: fmt.Errorf("environment %s not judged, the rule keeps its last state: %s", env.ID, env.Unknown)}
				s.Message = s.Err.Error()
				out = append(out, s)
			}
			continue
		}
		for _, r := range env.Results {
			if slices.Contains(p.ids, r.ID) {
				out = append(out, checkSample(r, labels, env.Identity))
			}
		}
	}
	return out
}

// LabelEnvironment is the label the engine adds to the series of an
// environment's results (its ID, docs/environments.md): each environment
// has its own episodes, score group and escalation.
const LabelEnvironment = "environment.id"

// EnvironmentSource gives check rules the latest patrol results of the Go
// environments builds use (agent/inventory).
type EnvironmentSource interface {
	Environments() []EnvironmentResult
}

// EnvironmentResult is the latest patrol of one environment.
type EnvironmentResult struct {
	ID string
	// Identity is who and where it is (user, container, pod), for the
	// annotations of its alerts; never a variable's value.
	Identity map[string]string
	// Unknown, when set, says why the checks' results are not known (the
	// environment could not be entered, its toolchain not resolved).
	Unknown string
	// Results are the checks the patrol ran.
	Results []check.Result
}
