package main

// The rules commands' output: the cycle table, the audit log's lines, JSON.

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gopatrol/gopatrol/agent/patrol"
)

func writeCycle(w io.Writer, c patrol.Cycle, output string) error {
	if output == "json" {
		return writeIndented(w, c)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tSTAGE\tLABELS\tVALUE\tTHRESHOLD\tBASELINE\tSTATE\tMESSAGE")
	for _, r := range c.Results {
		val, state := fmt.Sprintf("%.4g", r.Value), "ok"
		switch {
		case r.Error != "":
			val, state = "-", "unknown"
		case r.Firing:
			state = "firing since " + r.Since.Format(time.TimeOnly)
		case r.Breach:
			state = "breach"
		}
		base := "-"
		if b := r.Baseline; b != nil {
			base = fmt.Sprintf("%.4g [%.4g, %.4g] n=%d", b.Mean, b.Lo, b.Hi, b.N)
		}
		msg := r.Message
		if r.Error != "" {
			msg = r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Rule, r.Stage, labelString(r.Labels), val, r.Threshold, base, state, clip(msg, 80))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "GROUP\tSCORE\tBELOW\tESCALATED")
	for _, g := range c.Scores {
		fmt.Fprintf(tw, "%s\t%.1f\t%d\t%v\n", g.Group, g.Score, g.Below, g.Escalated)
	}
	return tw.Flush()
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

// clip is s on one line, cut at n bytes.
func clip(s string, n int) string {
	s = oneLine(s)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func auditWhat(l patrol.AuditEntry) string {
	switch l.Kind {
	case patrol.AuditLoad:
		return fmt.Sprintf("%d rules from %s, digest %.12s, revision %s", l.Rules, l.Dir, l.Digest, l.Revision)
	case patrol.AuditLoadFailed:
		return "kept the previous rules: " + clip(l.Error, 100)
	case patrol.AuditRule:
		return fmt.Sprintf("%s %s (stage %s → %s)", l.Rule, l.Change, dash(string(l.OldStage)), dash(string(l.NewStage)))
	}
	return fmt.Sprintf("rule %s, %s id %s %s", dash(l.Rule), l.Target, l.ID, l.Detail)
}

// writeIndented prints v as indented JSON, the -o json of every rules
// command but audit (which prints the log's own lines).
func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
