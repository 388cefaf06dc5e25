package remedy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/catalog"
)

// Outcome is what Fix did to one check.
type Outcome struct {
	Check         string
	Before, After check.Result
	Changes       []string // what was (or, dry run, would be) changed
	Undo          []string // how to undo each change: a shell command, run as root
	Held          bool     // the rerun passed
	Refused       string   // why nothing was done ("" when a fix ran)
}

// ErrUnknownCheck is returned by Fix for an ID the catalogue lacks.
var ErrUnknownCheck = errors.New("unknown check")

// Fix runs check id against env; when its result carries an automatable
// fix it applies it (dryRun: plans only) and reruns the check.
func Fix(ctx context.Context, env *check.Env, id string, dryRun bool) (Outcome, error) {
	all := allChecks()
	i := slices.IndexFunc(all, func(c check.Check) bool { return c.ID == id })
	if i < 0 {
		return Outcome{Check: id}, fmt.Errorf("%w %q (gopatrol check --list names them)", ErrUnknownCheck, id)
	}
	c := all[i]
	before := runOne(ctx, env, c)
	return FixResult(ctx, env, c, before, dryRun)
}

// FixResult is Fix for a check that has already run: before is its
// result (the `check --fix` command runs every check once, then fixes).
func FixResult(ctx context.Context, env *check.Env, c check.Check, before check.Result, dryRun bool) (Outcome, error) {
	o := Outcome{Check: c.ID, Before: before, After: before}
	if o.Refused = refusal(before); o.Refused != "" {
		return o, nil
	}
	var steps []step
	for _, rem := range before.Remedies {
		s, err := plan(env.Target, rem)
		if err != nil {
			o.Refused = err.Error()
			return o, nil
		}
		steps = append(steps, s...)
	}
	for _, s := range steps {
		o.Changes = append(o.Changes, s.change)
		o.Undo = append(o.Undo, s.undo)
	}
	if dryRun {
		return o, nil
	}
	for i, s := range steps {
		if err := s.apply(); err != nil {
			// Report only what was done, so that its undo is exact.
			o.Changes, o.Undo = o.Changes[:i], o.Undo[:i]
			return o, fmt.Errorf("fix %s: %s: %w", c.ID, s.change, err)
		}
		slog.Info("remedy applied", "check", c.ID, "change", s.change)
	}
	o.After = runOne(ctx, rerunEnv(ctx, env), c)
	o.Held = o.After.Status == check.Pass
	return o, nil
}

// refusal says why a result gets no automated fix, or "".
func refusal(r check.Result) string {
	switch {
	case r.Status == check.Pass || r.Status == check.Skip:
		return fmt.Sprintf("nothing to fix: the check's status is %s", r.Status)
	case r.Status == check.Error:
		return "the check could not run, so there is no finding to fix: " + r.Summary
	case r.Evidence[check.Follows] != "":
		return "this follows from " + r.Evidence[check.Follows] + ": fix that check first"
	case len(r.Remedies) == 0 && r.Fix == "":
		return "the check prints no fix"
	case len(r.Remedies) == 0:
		return "this fix needs a person (it is not one of the changes gopatrol makes itself, docs/remediation.md): " + r.Fix
	}
	return ""
}

func runOne(ctx context.Context, env *check.Env, c check.Check) check.Result {
	return check.Runner{}.Run(ctx, env, []check.Check{c})[0]
}

// rerunEnv resolves the toolchain again: a fix of the build cache changes
// what `go env` answers.
func rerunEnv(ctx context.Context, env *check.Env) *check.Env {
	goBin := ""
	if env.Toolchain != nil {
		goBin = env.Toolchain.Go
	}
	tc, err := check.ResolveToolchain(ctx, env.Target, goBin)
	if err != nil {
		return env
	}
	return &check.Env{Target: env.Target, Toolchain: tc}
}

// Undo runs o's undo commands, last change first, as the invoking user
// (root, who applied them), each with a deadline.
func Undo(ctx context.Context, o Outcome) error {
	local := &check.Target{Root: "/", Dir: "/", Environ: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}}
	for _, u := range slices.Backward(o.Undo) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		out, err := check.CombinedOutput(local.Command(cctx, "/bin/sh", "-c", u))
		cancel()
		if err != nil {
			return fmt.Errorf("undo %s: %q: %w: %s", o.Check, u, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

func allChecks() []check.Check { return catalog.All() }
