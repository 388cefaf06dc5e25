package check

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Status is the outcome of one check. The strings are part of the JSON
// contract (DESIGN.md) and never change.
type Status string

const (
	Pass  Status = "pass"
	Warn  Status = "warn"
	Fail  Status = "fail"
	Skip  Status = "skip"
	Error Status = "error"
)

// Statuses lists every status in report order.
var Statuses = []Status{Pass, Warn, Fail, Skip, Error}

// Check is one verification that the source document asks for.
//
// The source document is the design brief gopatrol was built from
// (seed/000_b419d643cb1908c3.txt, see DESIGN.md): a Chinese guide to
// diagnosing Go toolchains, whose chapters 1-4 are the checks. Source
// names the section a check implements, so that a reader can go and read
// why the check exists; in the JSON report it is the field "seed", a
// contract that does not change.
type Check struct {
	ID     string // stable, e.g. "goroot.valid"
	Title  string // one line for humans
	Source string // section of the source document, e.g. "2.1"

	// Slow checks (real builds, race detector) only run with --slow or when
	// named with --only.
	Slow bool
	// Timeout overrides the runner's per-check timeout.
	Timeout time.Duration
	// NoToolchain marks checks that run even when `go env` failed; every
	// other check is skipped then, pointing at go.binary.
	NoToolchain bool
	// FillsCache marks checks whose go commands compile: on a release's
	// first use of a build cache they compile the standard library into
	// it. Past its timeout, such a check keeps running while the cache
	// is being written or its builds use CPU (up to FillLimit) and is a hang once it is
	// not (Runner.Stall), unless --timeout was given.
	FillsCache bool
	// Proves marks checks that prove the toolchain by running it and whose
	// outcome depends only on what ProofInputs fingerprints: with
	// Runner.Proofs, their pass is kept and stands for later runs while
	// those inputs are unchanged.
	Proves bool

	Run func(ctx context.Context, env *Env) Result
}

// Env is what a check gets: the machine under test and its Go toolchain as
// resolved once for the whole run.
type Env struct {
	Target    *Target
	Toolchain *Toolchain
}

// Result is what a check saw. Checks fill Status, Summary, Evidence and Fix;
// the runner fills ID, Title, Source and Duration.
type Result struct {
	ID       string
	Title    string
	Source   string // the check's section of the source document
	Status   Status
	Summary  string
	Evidence map[string]string
	Fix      string
	// Remedies is the part of Fix that gopatrol can apply itself (check
	// --fix); empty when the fix needs a person.
	Remedies []Remedy
	Duration time.Duration
	// ProvedAt is when a kept proof stood for this run (Runner.Proofs):
	// the check did not run, and Duration is only the lookup's. Zero when
	// the check ran.
	ProvedAt time.Time
}

func result(s Status, format string, a ...any) Result {
	return Result{Status: s, Summary: fmt.Sprintf(format, a...)}
}

// Passf, Warnf, Failf, Skipf and Errorf build a result with a summary.
func Passf(format string, a ...any) Result  { return result(Pass, format, a...) }
func Warnf(format string, a ...any) Result  { return result(Warn, format, a...) }
func Failf(format string, a ...any) Result  { return result(Fail, format, a...) }
func Skipf(format string, a ...any) Result  { return result(Skip, format, a...) }
func Errorf(format string, a ...any) Result { return result(Error, format, a...) }

// With returns r with one more piece of evidence. Evidence names the path or
// value that made the check decide, so a person can go and look.
func (r Result) With(key, value string) Result {
	ev := make(map[string]string, len(r.Evidence)+1)
	maps.Copy(ev, r.Evidence)
	ev[key] = value
	r.Evidence = ev
	return r
}

// WithFix returns r with the action that makes the check pass.
func (r Result) WithFix(format string, a ...any) Result {
	r.Fix = fmt.Sprintf(format, a...)
	return r
}

// Worse reports whether s is more severe than t, for combining findings:
// fail > warn > error > skip > pass.
func (s Status) Worse(t Status) bool { return severity[s] > severity[t] }

var severity = map[Status]int{Pass: 0, Skip: 1, Error: 2, Warn: 3, Fail: 4}

// Finding is one observation of a check that looks at several things (a
// PATH, every GOPATH element, each setting of a GOENV file).
type Finding struct {
	Status  Status
	Summary string
	Fix     string
	// Remedy, when set, applies Fix (or one of its alternatives).
	Remedy *Remedy
}

// Combine turns findings into one result: the worst status, the summaries of
// every finding of that status, their distinct fixes, and the evidence. With
// nothing worse than a pass it passes with passSummary.
func Combine(passSummary string, fs []Finding, evidence map[string]string) Result {
	worst := Pass
	for _, f := range fs {
		if f.Status.Worse(worst) {
			worst = f.Status
		}
	}
	r := Passf("%s", passSummary)
	if worst != Pass {
		var msgs, fixes []string
		var rems []Remedy
		automatable := true
		for _, f := range fs {
			if f.Status != worst {
				continue
			}
			msgs = append(msgs, f.Summary)
			if f.Fix != "" && !slices.Contains(fixes, f.Fix) {
				fixes = append(fixes, f.Fix)
			}
			if f.Remedy == nil {
				automatable = false
			} else {
				rems = append(rems, *f.Remedy)
			}
		}
		r = Result{Status: worst, Summary: strings.Join(msgs, "; "), Fix: strings.Join(fixes, "; ")}
		// A remedy that fixes some of the findings would not make the
		// check pass: declare one only when every finding has its own.
		if automatable {
			r.Remedies = rems
		}
	}
	for k, v := range evidence {
		r = r.With(k, v)
	}
	return r
}
