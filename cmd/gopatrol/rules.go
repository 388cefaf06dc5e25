package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/catalog"
	"github.com/gopatrol/gopatrol/agent/patrol"
)

// defaultStateDir is the agent's state directory (agent config state_dir).
const defaultStateDir = "/var/lib/gopatrol"

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Validate, evaluate, test and report on patrol rules (docs/rules.md)",
	}
	cmd.AddCommand(newRulesValidateCmd(), newRulesEvalCmd(), newRulesTestCmd(), newRulesReportCmd(), newRulesAuditCmd())
	return cmd
}

// loadRules loads a rules directory; a bad set is exit 2 with every
// problem, one a line.
func loadRules(dir string) (*patrol.RuleSet, error) {
	set, err := patrol.LoadDir(dir)
	var ps patrol.Problems
	if errors.As(err, &ps) {
		return nil, usageErr("%d problem(s) in the rules:\n%v", len(ps), err)
	}
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return set, nil
}

func newRulesValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate DIR",
		Short: "Check the rules in DIR; exit 2 naming file, line, rule and field of each problem",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := loadRules(args[0])
			if err != nil {
				return err
			}
			rev := set.Revision
			if rev == "" {
				rev = "none"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d rules OK in %s (digest %s, revision %s)\n", len(set.Rules), args[0], set.Digest[:12], rev)
			return nil
		},
	}
}

type evalFlags struct {
	once      bool
	output    string
	stateDir  string
	hostID    string
	allowExec bool
	slow      bool
	interval  time.Duration
}

func newRulesEvalCmd() *cobra.Command {
	var f evalFlags
	cmd := &cobra.Command{
		Use:   "eval DIR",
		Short: "Evaluate the rules in DIR now and print a table (exit 1 when a live rule breaches)",
		Long: `eval evaluates every rule of DIR and prints each rule's value, threshold,
baseline and state, then each group's health score. With --once it
evaluates once; without, every --interval until interrupted.

Rules of types this command cannot evaluate (promql and sql need the
agent's configured evaluators, metric rules the agent's own instruments)
show their error instead of a value. Without --state-dir the baselines
start empty and nothing is written.

Exit codes: 0 no live rule breaches; 1 at least one does (shadow rules do
not count); 2 bad invocation or rules.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRulesEval(cmd.Context(), cmd.OutOrStdout(), args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.once, "once", false, "evaluate once and exit")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fl.StringVar(&f.stateDir, "state-dir", "", "keep baselines and episodes here (default: in memory only)")
	fl.StringVar(&f.hostID, "host-id", "", "host identity for canary selection (default: the host name)")
	fl.BoolVar(&f.allowExec, "allow-exec", false, "run exec rules")
	fl.BoolVar(&f.slow, "slow", false, "run slow checks of check rules too")
	fl.DurationVar(&f.interval, "interval", 30*time.Second, "without --once: time between evaluations")
	return cmd
}

func runRulesEval(ctx context.Context, stdout io.Writer, dir string, f evalFlags) error {
	if err := validOutput(f.output); err != nil {
		return err
	}
	if f.interval <= 0 {
		return usageErr("--interval %s: want a positive duration", f.interval)
	}
	set, err := loadRules(dir)
	if err != nil {
		return err
	}
	if f.hostID == "" {
		f.hostID, _ = os.Hostname()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := patrol.Config{StateDir: f.stateDir, HostID: f.hostID, AllowExec: f.allowExec, Lenient: true}
	if slices.ContainsFunc(set.Rules, func(r patrol.Rule) bool { return r.Type == patrol.TypeCheck }) {
		target, err := check.LocalTarget()
		if err != nil {
			return usageErr("%v", err)
		}
		tc, err := check.ResolveToolchain(ctx, target, "")
		if err != nil {
			return fmt.Errorf("check rules need the Go toolchain: %w", err)
		}
		cfg.Checks = patrol.Doctor{Env: &check.Env{Target: target, Toolchain: tc}, Checks: catalog.All(), SkipSlow: !f.slow}
	}
	e, err := patrol.New(cfg)
	if err != nil {
		return usageErr("%v", err)
	}
	if err := e.Swap(set); err != nil {
		return usageErr("%v", err)
	}
	for {
		c, err := e.EvaluateAll(ctx)
		if err != nil {
			return err
		}
		if err := writeCycle(stdout, c, f.output); err != nil {
			return err
		}
		if f.once {
			if slices.ContainsFunc(c.Results, func(r patrol.Result) bool { return r.Breach && r.Stage != patrol.StageShadow }) {
				return silentExit(1)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(f.interval):
		}
	}
}

func newRulesTestCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "test FILE...",
		Short: "Run unit tests of rules (series in, expected firings out; exit 1 on a failure)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			failed := 0
			for _, f := range args {
				fails, err := patrol.RunTestFile(f)
				if err != nil {
					return usageErr("%v", err)
				}
				for _, fl := range fails {
					fmt.Fprintf(out, "FAIL %s: %s\n", f, fl)
				}
				if len(fails) == 0 {
					fmt.Fprintf(out, "ok   %s\n", f)
				}
				failed += len(fails)
			}
			if failed > 0 {
				return silentExit(1)
			}
			return nil
		},
	}
}

func newRulesReportCmd() *cobra.Command {
	var stateDir, hostID, output string
	cmd := &cobra.Command{
		Use:   "report DIR",
		Short: "Per shadow or canary rule of DIR: evaluations, firings and firing rate over the last 48 hours",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validOutput(output); err != nil {
				return err
			}
			set, err := loadRules(args[0])
			if err != nil {
				return err
			}
			st, err := patrol.LoadState(stateDir)
			if err != nil {
				return usageErr("--state-dir: %v", err)
			}
			if hostID == "" {
				hostID, _ = os.Hostname()
			}
			lines := patrol.BuildReport(set, st, hostID, time.Now())
			out := cmd.OutOrStdout()
			if output == "json" {
				return writeIndented(out, lines)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RULE\tSTAGE\tON THIS NODE\tEVALUATIONS\tFIRINGS\tERRORS\tFIRING RATE")
			for _, l := range lines {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%.2f%%\n", l.Rule, l.Stage, l.Effective, l.Evaluations, l.Firings, l.Errors, 100*l.Rate)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", defaultStateDir, "the agent's state directory")
	cmd.Flags().StringVar(&hostID, "host-id", "", "host identity for canary selection (default: the host name)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func newRulesAuditCmd() *cobra.Command {
	var stateDir, output string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Print the audit log: rule set loads with digest and revision, rule changes, notifications, silences, tickets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validOutput(output); err != nil {
				return err
			}
			if fi, err := os.Stat(stateDir); err != nil || !fi.IsDir() {
				return usageErr("--state-dir %s: not a directory", stateDir)
			}
			lines, err := patrol.ReadAudit(patrol.AuditPath(stateDir))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				for _, l := range lines {
					if err := enc.Encode(l); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tKIND\tWHAT")
			for _, l := range lines {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Time.Format(time.RFC3339), l.Kind, auditWhat(l))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", defaultStateDir, "the agent's state directory")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text (table) or json (the log's lines)")
	return cmd
}
