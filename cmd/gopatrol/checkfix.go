package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/remedy"
)

// fixMode is what `check --fix` does: nothing, plan (dry run), or apply.
type fixMode int

const (
	fixOff fixMode = iota
	fixPlan
	fixApply
)

// chooseFixMode applies docs/remediation.md: --fix plans only with
// --dry-run, and also when stdout is not a terminal unless --yes says a
// script means it.
func chooseFixMode(f checkFlags, stdout io.Writer) (fixMode, error) {
	switch {
	case !f.fix && (f.dryRun || f.yes):
		return fixOff, usageErr("--dry-run and --yes go with --fix (gopatrol check --fix --dry-run)")
	case !f.fix:
		return fixOff, nil
	case f.env != "":
		// A learned environment lives in another mount namespace, reached
		// through /proc/PID/root while a process holds it: a fix there
		// could land in the wrong container once that process is gone.
		return fixOff, usageErr("--fix does not apply to --env %s: check it, then fix inside its container (gopatrol check --fix there)", f.env)
	case f.dryRun && f.yes:
		return fixOff, usageErr("--dry-run and --yes contradict each other: --dry-run plans, --yes applies")
	case f.dryRun, !f.yes && !isTerminal(stdout):
		return fixPlan, nil
	}
	return fixApply, nil
}

// applyFixes fixes each failed or warned result whose check declares an
// automatable fix, in report order, and returns every outcome. With any
// change made, the checks run again (the toolchain resolved anew), so the
// report shows the machine as the fixes left it.
func applyFixes(ctx context.Context, env *check.Env, goBin string, checks []check.Check, results []check.Result, mode fixMode, timeout func() check.Runner) ([]remedy.Outcome, []check.Result, error) {
	var outs []remedy.Outcome
	changed := false
	for i, r := range results {
		if r.Status != check.Fail && r.Status != check.Warn {
			continue
		}
		o, err := remedy.FixResult(ctx, env, checks[i], r, mode == fixPlan)
		if mode == fixApply && len(o.Changes) > 0 {
			changed = true
		}
		outs = append(outs, o)
		if err != nil {
			return outs, results, err
		}
	}
	if !changed {
		return outs, results, nil
	}
	tc, err := check.ResolveToolchain(ctx, env.Target, goBin)
	if err != nil {
		return outs, results, fmt.Errorf("resolve the toolchain after fixing: %w", err)
	}
	env = &check.Env{Target: env.Target, Toolchain: tc}
	return outs, timeout().Run(ctx, env, checks), nil
}

// writeFixesText prints what --fix did or would do, after the report.
func writeFixesText(w io.Writer, outs []remedy.Outcome, mode fixMode) {
	if len(outs) == 0 {
		return
	}
	if mode == fixPlan {
		fmt.Fprintln(w, "\nFixes (dry run, nothing was changed; --fix --yes applies them):")
	} else {
		fmt.Fprintln(w, "\nFixes:")
	}
	for _, o := range outs {
		switch {
		case o.Refused != "":
			fmt.Fprintf(w, "  %s: not fixed: %s\n", o.Check, o.Refused)
			continue
		case mode == fixPlan:
			fmt.Fprintf(w, "  %s: would change\n", o.Check)
		case o.Held:
			fmt.Fprintf(w, "  %s: fixed, and the check now passes\n", o.Check)
		default:
			fmt.Fprintf(w, "  %s: changed, but the fix did not hold: %s: %s\n", o.Check, o.After.Status, o.After.Summary)
		}
		for i, c := range o.Changes {
			fmt.Fprintf(w, "    - %s\n      undo: %s\n", c, strings.ReplaceAll(o.Undo[i], "\n", "\n            "))
		}
	}
}

// fixJSON is one entry of the "fixes" list of `check --fix -o json`.
type fixJSON struct {
	Check   string       `json:"check"`
	DryRun  bool         `json:"dry_run"`
	Before  check.Status `json:"before"`
	After   check.Status `json:"after"`
	Held    bool         `json:"held"`
	Refused string       `json:"refused,omitempty"`
	Changes []string     `json:"changes"`
	Undo    []string     `json:"undo"`
}

func fixesJSON(outs []remedy.Outcome, mode fixMode) []fixJSON {
	js := make([]fixJSON, 0, len(outs))
	for _, o := range outs {
		js = append(js, fixJSON{Check: o.Check, DryRun: mode == fixPlan, Before: o.Before.Status, After: o.After.Status,
			Held: o.Held, Refused: o.Refused, Changes: nonNil(o.Changes), Undo: nonNil(o.Undo)})
	}
	return js
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// isTerminal reports whether w is a terminal that understands cursor
// control (not TERM=dumb).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
