package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/catalog"
)

// gateFlags turn `gopatrol check` into the init-container gate of a build
// pod (docs/remediation.md, "The init-container gate"): a policy says which
// checks' failures stop the pod's start and which only warn, and the
// message of a stop goes where Kubernetes shows it.
type gateFlags struct {
	gate, warn  []string // check ID globs
	messageFile string
	stderr      io.Writer
}

// gateMessageCap is what Kubernetes keeps of a termination message.
const gateMessageCap = 4096

// addGateFlags registers the gate's flags on check and validates them
// before the checks run (a bad policy is a usage error, exit 2).
func addGateFlags(cmd *cobra.Command, g *gateFlags) {
	fl := cmd.Flags()
	fl.StringSliceVar(&g.gate, "gate", nil, "gate mode: failures of these check IDs or globs (comma-separated, or all) exit 1 with a message; other failures only warn and exit 0")
	fl.StringSliceVar(&g.warn, "warn-only", nil, "with --gate: failures of these check IDs or globs only warn, even if --gate names them")
	fl.StringVar(&g.messageFile, "gate-message-file", "", "with --gate: also write the gate's message here (/dev/termination-log in a pod)")
	// Chained, so that another flag's PreRunE set before this one stays.
	prev := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if prev != nil {
			if err := prev(cmd, args); err != nil {
				return err
			}
		}
		g.stderr = cmd.ErrOrStderr()
		return g.validate(catalog.All())
	}
}

func (g *gateFlags) validate(all []check.Check) error {
	// An empty policy entry (--warn-only= from an empty ConfigMap key)
	// names nothing.
	g.gate = slices.DeleteFunc(g.gate, func(s string) bool { return s == "" })
	g.warn = slices.DeleteFunc(g.warn, func(s string) bool { return s == "" })
	if len(g.gate) == 0 {
		if len(g.warn) > 0 || g.messageFile != "" {
			return usageErr("--warn-only and --gate-message-file need --gate (the checks whose failure stops the start)")
		}
		return nil
	}
	for i, p := range g.gate {
		if p == "all" {
			g.gate[i] = "*"
		}
	}
	for flag, pats := range map[string][]string{"--gate": g.gate, "--warn-only": g.warn} {
		for _, p := range pats {
			if _, err := filepath.Match(p, ""); err != nil {
				return usageErr("%s %q: not a valid glob: %v", flag, p, err)
			}
			if !matchesAny(all, p) {
				return usageErr("%s %q: matches no check; `gopatrol check --list` names them", flag, p)
			}
		}
	}
	return nil
}

func matchesAny(all []check.Check, pat string) bool {
	for _, c := range all {
		if ok, _ := filepath.Match(pat, c.ID); ok {
			return true
		}
	}
	return false
}

func matchID(pats []string, id string) bool {
	for _, p := range pats {
		if ok, _ := filepath.Match(p, id); ok {
			return true
		}
	}
	return false
}

// gates reports whether a failure of id stops the start.
func (g *gateFlags) gates(id string) bool { return matchID(g.gate, id) && !matchID(g.warn, id) }

// exitCode is the gate's verdict over the report, given the doctor's own
// code: 1 when a gating check failed, 4 when the doctor could not finish
// (interrupted), else 0, even when a non-gating check failed or the export
// failed (telemetry must not stop a build). Without --gate it is code.
func (g *gateFlags) exitCode(rep check.Report, code int, interrupted bool) int {
	if len(g.gate) == 0 {
		return code
	}
	var block, warn []check.Result
	for _, r := range rep.Results {
		switch {
		case r.Status == check.Fail && g.gates(r.ID):
			block = append(block, r)
		case r.Status == check.Fail || r.Status == check.Error:
			warn = append(warn, r)
		}
	}
	if g.stderr == nil {
		g.stderr = os.Stderr
	}
	msg := gateMessage(block, warn)
	if msg != "" {
		fmt.Fprint(g.stderr, msg)
	}
	if len(block) > 0 && g.messageFile != "" {
		if len(msg) > gateMessageCap {
			msg = msg[:gateMessageCap-4] + "...\n"
		}
		if err := os.WriteFile(g.messageFile, []byte(msg), 0o644); err != nil {
			fmt.Fprintf(g.stderr, "gopatrol gate: message not written to %s: %v\n", g.messageFile, err)
		}
	}
	switch {
	case len(block) > 0:
		return check.ExitFail
	case interrupted:
		return check.ExitIncomplete // stopped before the checks finished: nothing was verified
	case code == ExitExport:
		fmt.Fprintln(g.stderr, "gopatrol gate: warning: the export failed; the start is not gated on telemetry")
	}
	return check.ExitOK
}

// gateMessage says why the start stops (the failing checks, each with its
// summary and fix) and what only warns.
func gateMessage(block, warn []check.Result) string {
	var b strings.Builder
	if len(block) > 0 {
		fmt.Fprintf(&b, "gopatrol gate: this environment cannot build; the pod does not start (%d gating check(s) failed):\n", len(block))
		for _, r := range block {
			fmt.Fprintf(&b, "- %s: %s\n", r.ID, r.Summary)
			if r.Fix != "" {
				fmt.Fprintf(&b, "  fix: %s\n", r.Fix)
			}
		}
	}
	if len(warn) > 0 {
		fmt.Fprintf(&b, "gopatrol gate: warnings (not gating, %d):\n", len(warn))
		for _, r := range warn {
			fmt.Fprintf(&b, "- %s (%s): %s\n", r.ID, r.Status, r.Summary)
		}
	}
	return b.String()
}
