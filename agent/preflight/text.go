package preflight

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Verdict is the report's one-word result: ready, degraded or not-ready.
func (r Report) Verdict() string {
	switch {
	case !r.OK:
		return "not-ready"
	case r.Degraded:
		return "degraded"
	}
	return "ready"
}

// WriteText writes the report for a terminal and for `kubectl logs`: one
// line per item, then, for each missing one, what to do and what it costs.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, it := range r.Items {
		state := "ok"
		switch {
		case !it.OK && it.Required:
			state = "MISSING"
		case !it.OK:
			state = "missing"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", state, it.Name, it.Found)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for _, it := range r.Missing() {
		kind := "optional"
		if it.Required {
			kind = "required"
		}
		fmt.Fprintf(&b, "\n%s (%s): %s\n  fix: %s\n  cost: %s\n", it.Name, kind, it.Found, it.Fix, it.Cost)
	}
	fmt.Fprintf(&b, "\npreflight: %s (host root %s, state dir %s)\n", r.Verdict(), r.HostRoot, r.StateDir)
	_, err := io.WriteString(w, b.String())
	return err
}
