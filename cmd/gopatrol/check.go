package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/catalog"
	"github.com/gopatrol/gopatrol/agent/remedy"
)

type checkFlags struct {
	only, skip []string
	list       bool
	goBin      string
	dir        string
	output     string
	failOn     string
	asUser     string
	slow       bool
	fresh      bool
	timeout    time.Duration
	export     bool
	pluginDir  string
	fix        bool
	dryRun     bool
	yes        bool
	gate       gateFlags     // gate.go
	env        string        // --env: an environment of the agent's inventory (check_env.go)
	envState   stateDirFlags // where that inventory is
}

func newCheckCmd() *cobra.Command {
	var f checkFlags
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify this machine's Go environment and say what to fix",
		Long: `check runs the doctor: every check of docs/checks.md against the Go
toolchain on this machine, concurrently, each with its own timeout.

Exit codes (docs/checks.md): 0 every check that ran passed, warned or
skipped; 1 at least one failed (or warned, with --fail-on warn); 2 bad
invocation or configuration; 3 the checks passed but --export failed
(docs/otel.md); 4 the doctor could not finish: a check in status error
(could not run, timed out) or the run was interrupted. The report is
printed in every case but 2.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.only, "only", nil, "run only these check IDs (comma-separated)")
	fl.StringSliceVar(&f.skip, "skip", nil, "skip these check IDs (comma-separated)")
	fl.BoolVar(&f.list, "list", false, "list the checks and exit")
	fl.StringVar(&f.goBin, "go", "", "the go binary to check (default: the first go on PATH)")
	fl.StringVarP(&f.dir, "dir", "C", "", "run in this directory (the module under test)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fl.StringVar(&f.failOn, "fail-on", "fail", "lowest status that makes the exit code 1: fail or warn")
	fl.StringVar(&f.asUser, "as-user", "", "probe as this user, the one who builds (default: the invoking user)")
	fl.BoolVar(&f.slow, "slow", false, "also run the slow checks (race build, cache verification)")
	fl.BoolVar(&f.fresh, "fresh", false, "prove again: run the toolchain (go run, go list std, the cgo and PIE builds, go tool compile) even where a proof kept from an earlier run still stands (docs/checks.md)")
	fl.DurationVar(&f.timeout, "timeout", 0, "per-check timeout (default 10s, 3m for slow checks)")
	fl.BoolVar(&f.export, "export", false, "also send the results as OpenTelemetry metrics (OTEL_* environment, docs/otel.md); exit 3 if that fails")
	fl.StringVar(&f.pluginDir, "plugin-dir", "", "with --export: run the cloud probe plugins in DIR and put their cloud.* attributes on the resource")
	fl.BoolVar(&f.fix, "fix", false, "apply the fixes that are safe to automate, then check again (docs/remediation.md); plans only when stdout is not a terminal, unless --yes")
	fl.BoolVar(&f.dryRun, "dry-run", false, "with --fix: print what would change, and how to undo it, without changing anything")
	fl.BoolVar(&f.yes, "yes", false, "with --fix: apply even when stdout is not a terminal (scripts, CI)")
	addGateFlags(cmd, &f.gate)
	fl.StringVar(&f.env, "env", "", "check this environment of the agent's inventory (ID from `gopatrol agent status`): its user, variables and container")
	f.envState.add(cmd)
	return cmd
}

func runCheck(ctx context.Context, stdout, stderr io.Writer, f checkFlags) error {
	if err := validOutput(f.output); err != nil {
		return err
	}
	if f.failOn != "fail" && f.failOn != "warn" {
		return usageErr("--fail-on %q: want fail or warn", f.failOn)
	}
	mode, err := chooseFixMode(f, stdout)
	if err != nil {
		return err
	}
	all := catalog.All()
	checks, err := check.Select(all, f.only, f.skip, f.slow)
	err = errors.Join(err, check.Runner{Timeout: f.timeout}.Validate())
	if err != nil {
		return usageErr("%v", err)
	}
	if f.list {
		return listChecks(stdout, all, f.output)
	}

	target, err := check.LocalTarget()
	if err != nil {
		return usageErr("%v", err)
	}
	if f.env != "" {
		if target, f.goBin, err = envTarget(f.env, &f.envState, f.goBin); err != nil {
			return err
		}
	}
	if f.dir != "" {
		abs, err := filepath.Abs(f.dir)
		if err != nil {
			return usageErr("-C %s: %v", f.dir, err)
		}
		if fi, err := os.Stat(target.Path(abs)); err != nil || !fi.IsDir() {
			return usageErr("-C %s: not a directory", f.dir)
		}
		target.Dir = abs
	}
	if f.asUser != "" {
		u, err := target.LookupUser(f.asUser)
		if err != nil {
			return usageErr("--as-user %s: %v", f.asUser, err)
		}
		target.User = u
		if target.AsOther() && os.Geteuid() != 0 {
			return usageErr("--as-user %s: probing as another user needs root (run with sudo)", f.asUser)
		}
	}

	exp, err := prepareExport(ctx, f.export, target.Root, f.pluginDir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	tc, err := check.ResolveToolchain(ctx, target, f.goBin)
	if err != nil {
		if errors.Is(err, check.ErrNotGo) || f.goBin != "" {
			return usageErr("%v", err)
		}
		return err
	}
	env := &check.Env{Target: target, Toolchain: tc}
	progress := newProgress(stderr, len(checks))
	runner := check.Runner{Timeout: f.timeout, Progress: progress.event}
	if !f.fresh {
		// Without a cache directory every run proves: slower, not wrong.
		runner.Proofs, _ = check.UserProofs()
	}
	results := runner.Run(ctx, env, checks)
	progress.end()
	var fixes []remedy.Outcome
	var fixErr error
	if mode != fixOff && ctx.Err() == nil {
		fixes, results, fixErr = applyFixes(ctx, env, f.goBin, checks, results, mode, func() check.Runner { return check.Runner{Timeout: f.timeout} })
	}
	// Ctrl-C or SIGTERM while the checks ran: what is printed is partial.
	interrupted := ctx.Err() != nil
	rep := check.NewReport(tc, results)

	if f.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		var v any = rep
		if mode != fixOff {
			v = struct {
				check.Report
				Fixes []fixJSON `json:"fixes"`
			}{rep, fixesJSON(fixes, mode)}
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else {
		writeText(stdout, rep, time.Since(start), useColor(stdout))
		writeFixesText(stdout, fixes, mode)
	}
	if fixErr != nil {
		return fixErr
	}
	if code := f.gate.exitCode(rep, exp.exitCode(ctx, rep, rep.FinalExitCode(f.failOn == "warn", interrupted)), interrupted); code != 0 {
		return silentExit(code)
	}
	return nil
}

func listChecks(w io.Writer, all []check.Check, output string) error {
	type entry struct {
		ID    string `json:"id"`
		Title string `json:"title"`
		Seed  string `json:"seed"`
		Slow  bool   `json:"slow"`
	}
	entries := make([]entry, len(all))
	width := 0
	for i, c := range all {
		entries[i] = entry{c.ID, c.Title, c.Source, c.Slow}
		width = max(width, len(c.ID))
	}
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	for _, e := range entries {
		slow := ""
		if e.Slow {
			slow = " (slow)"
		}
		fmt.Fprintf(w, "%-*s  %-10s %s%s\n", width, e.ID, "seed "+e.Seed, e.Title, slow)
	}
	return nil
}

// useColor: only a terminal gets colour, and NO_COLOR (no-color.org) wins.
func useColor(w io.Writer) bool {
	return os.Getenv("NO_COLOR") == "" && isTerminal(w)
}

var marks = map[check.Status]struct{ mark, color string }{
	check.Pass:  {"✓", "\x1b[32m"},
	check.Warn:  {"!", "\x1b[33m"},
	check.Fail:  {"✗", "\x1b[31m"},
	check.Skip:  {"-", "\x1b[2m"},
	check.Error: {"?", "\x1b[35m"},
}

// writeText prints the report the way flutter doctor does: a line per check,
// the evidence and the fix under anything that did not pass, a summary.
func writeText(w io.Writer, rep check.Report, elapsed time.Duration, color bool) {
	paint := func(s check.Status, text string) string {
		if !color {
			return text
		}
		return marks[s].color + text + "\x1b[0m"
	}
	tc := rep.Toolchain
	if tc.Error == "" {
		fmt.Fprintf(w, "Go %s at %s (GOROOT %s)\n\n", strings.TrimPrefix(tc.Version, "go"), tc.Go, tc.GOROOT)
	} else {
		fmt.Fprintf(w, "No working Go toolchain: %s\n\n", tc.Error)
	}
	width := 0
	for _, r := range rep.Results {
		width = max(width, len(r.ID))
	}
	for _, r := range rep.Results {
		fmt.Fprintf(w, "[%s] %-*s  %s\n", paint(r.Status, marks[r.Status].mark), width, r.ID, r.Summary)
		if r.Status == check.Pass {
			continue
		}
		for _, k := range check.EvidenceKeys(r.Evidence) {
			v := strings.ReplaceAll(r.Evidence[k], "\n", "\n      ")
			fmt.Fprintf(w, "    • %s: %s\n", k, v)
		}
		if r.Fix != "" {
			fmt.Fprintf(w, "    %s %s\n", paint(r.Status, "→ fix:"), r.Fix)
		}
	}
	var parts []string
	for _, s := range []check.Status{check.Fail, check.Warn, check.Error, check.Pass, check.Skip} {
		if n := rep.Summary[s]; n > 0 {
			parts = append(parts, paint(s, fmt.Sprintf("%d %s", n, statusWord[s])))
		}
	}
	fmt.Fprintf(w, "\n%s in %.2fs\n", strings.Join(parts, ", "), elapsed.Seconds())
	if rep.Summary[check.Fail] == 0 && rep.Summary[check.Warn] == 0 && rep.Summary[check.Error] == 0 {
		fmt.Fprintln(w, "• No issues found!")
	}
}

var statusWord = map[check.Status]string{
	check.Pass: "passed", check.Warn: "warned", check.Fail: "failed", check.Skip: "skipped", check.Error: "could not run",
}
