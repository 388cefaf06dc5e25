package check

import (
	"encoding/json"
	"math"
	"time"
)

// Schema names the JSON report's version; a change that breaks scripts
// gets a new one.
const Schema = "gopatrol.check/v1"

// Report is `gopatrol check -o json`, the contract of DESIGN.md.
type Report struct {
	Schema    string         `json:"schema"`
	Toolchain ToolchainInfo  `json:"toolchain"`
	Results   []Result       `json:"results"`
	Summary   map[Status]int `json:"summary"`
}

// ToolchainInfo identifies the toolchain a report is about.
type ToolchainInfo struct {
	Go          string `json:"go"`
	GOROOT      string `json:"goroot"`
	Version     string `json:"version"`
	GOFLAGS     string `json:"goflags"`
	GOTOOLCHAIN string `json:"gotoolchain"`
	Error       string `json:"error,omitempty"`
}

// NewReport assembles a report; the summary counts every status, zeros
// included, so scripts can index it without checking.
func NewReport(tc *Toolchain, results []Result) Report {
	rep := Report{Schema: Schema, Results: results, Summary: map[Status]int{}}
	if rep.Results == nil {
		rep.Results = []Result{}
	}
	if tc != nil {
		rep.Toolchain = ToolchainInfo{Go: tc.Go, GOROOT: tc.Get("GOROOT"), Version: tc.Version(), GOFLAGS: tc.GOFLAGS, GOTOOLCHAIN: tc.GOTOOLCHAIN}
		if tc.Err != nil {
			rep.Toolchain.Error = tc.Err.Error()
		}
	}
	for _, s := range Statuses {
		rep.Summary[s] = 0
	}
	for _, r := range results {
		rep.Summary[r.Status]++
	}
	return rep
}

// Exit codes of `gopatrol check` (docs/checks.md).
const (
	ExitOK    = 0 // no check failed
	ExitFail  = 1 // at least one check failed (or warned, with --fail-on warn)
	ExitUsage = 2 // bad invocation or configuration
)

// ExitCode is the process exit code the report calls for.
func (rep Report) ExitCode(failOnWarn bool) int {
	if rep.Summary[Fail] > 0 || (failOnWarn && rep.Summary[Warn] > 0) {
		return ExitFail
	}
	return ExitOK
}

type resultJSON struct {
	ID         string            `json:"id"`
	Title      string            `json:"title"`
	Status     Status            `json:"status"`
	Summary    string            `json:"summary"`
	Evidence   map[string]string `json:"evidence"`
	Fix        string            `json:"fix,omitempty"`
	Remedies   []Remedy          `json:"remedies,omitempty"`
	DurationMS float64           `json:"duration_ms"`
	Seed       string            `json:"seed"`
	ProvedAt   *time.Time        `json:"proved_at,omitempty"`
}

// MarshalJSON writes a result in the report's field names, with the
// duration in milliseconds.
func (r Result) MarshalJSON() ([]byte, error) {
	ev := r.Evidence
	if ev == nil {
		ev = map[string]string{}
	}
	ms := math.Round(float64(r.Duration.Microseconds())/10) / 100
	var proved *time.Time
	if !r.ProvedAt.IsZero() {
		at := r.ProvedAt.UTC()
		proved = &at
	}
	return json.Marshal(resultJSON{r.ID, r.Title, r.Status, r.Summary, ev, r.Fix, r.Remedies, ms, r.Source, proved})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Result) UnmarshalJSON(b []byte) error {
	var j resultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Result{ID: j.ID, Title: j.Title, Status: j.Status, Summary: j.Summary, Evidence: j.Evidence, Fix: j.Fix, Remedies: j.Remedies, Source: j.Seed}
	r.Duration = time.Duration(j.DurationMS * float64(time.Millisecond))
	if j.ProvedAt != nil {
		r.ProvedAt = *j.ProvedAt
	}
	return nil
}
