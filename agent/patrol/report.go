package patrol

import (
	"maps"
	"slices"
	"time"
)

// ReportLine is one rule's record over the report window: the data for
// promoting a shadow or canary rule.
type ReportLine struct {
	Rule        string  `json:"rule"`
	Stage       Stage   `json:"stage"`           // as written
	Effective   Stage   `json:"effective_stage"` // on this node
	Evaluations int     `json:"evaluations"`
	Firings     int     `json:"firings"`
	Errors      int     `json:"errors"`
	Rate        float64 `json:"firing_rate"` // firings per evaluation
}

// BuildReport reports every shadow and canary rule of set from the counts
// in st over the last ReportWindow. Firings of a rule that is shadow on
// this node are its candidate false positives.
func BuildReport(set *RuleSet, st *State, hostID string, now time.Time) []ReportLine {
	var out []ReportLine
	for _, r := range set.Rules {
		if r.Stage == StageActive {
			continue
		}
		l := ReportLine{Rule: r.Name, Stage: r.Stage, Effective: r.Stage}
		if r.Stage == StageCanary && !InCanary(hostID, r.Name, r.CanaryPercent) {
			l.Effective = StageShadow
		}
		if rs, ok := st.Rules[r.Name]; ok {
			l.Evaluations, l.Firings, l.Errors = rs.Window(now, ReportWindow)
		}
		if l.Evaluations > 0 {
			l.Rate = float64(l.Firings) / float64(l.Evaluations)
		}
		out = append(out, l)
	}
	return out
}

// Report is BuildReport over the engine's rules and state.
func (e *Engine) Report(now time.Time) []ReportLine {
	set := e.Rules()
	if set == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return BuildReport(set, e.state, e.cfg.HostID, now)
}

// Status is the engine's state now, for the agent's /status: each group's
// latest score and whether it is escalated, and every firing series.
type Status struct {
	Rules    int           `json:"rules"`
	Digest   string        `json:"digest,omitempty"`
	Revision string        `json:"revision,omitempty"`
	Groups   []GroupScore  `json:"groups"`
	Firing   []SeriesState `json:"firing"`
}

// Status returns a copy of the engine's state.
func (e *Engine) Status() Status {
	var st Status
	if set := e.Rules(); set != nil {
		st.Rules, st.Digest, st.Revision = len(set.Rules), set.Digest, set.Revision
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, g := range slices.Sorted(maps.Keys(e.state.Groups)) {
		gs := e.state.Groups[g]
		score := 100.0
		if n := len(gs.History); n > 0 {
			score = gs.History[n-1].Score
		}
		st.Groups = append(st.Groups, GroupScore{Group: g, Score: score, Below: gs.Below, Escalated: gs.Escalated})
	}
	for _, k := range slices.Sorted(maps.Keys(e.state.Series)) {
		if s := e.state.Series[k]; s.Firing {
			st.Firing = append(st.Firing, *s)
		}
	}
	return st
}
