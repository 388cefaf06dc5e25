package check_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

func env(t *testing.T) *check.Env {
	t.Helper()
	target, err := check.LocalTarget()
	if err != nil {
		t.Fatal(err)
	}
	return &check.Env{Target: target, Toolchain: &check.Toolchain{Env: map[string]string{}}}
}

func TestRunnerIsolatesBadChecks(t *testing.T) {
	// A check that sleeps past its context only returns when the runner
	// gives up on it; released lets it go at the end of the test.
	released := make(chan struct{})
	t.Cleanup(func() { close(released) })
	checks := []check.Check{
		{ID: "ok", Run: func(context.Context, *check.Env) check.Result { return check.Passf("fine") }},
		{ID: "panics", Run: func(context.Context, *check.Env) check.Result { panic("boom") }},
		{ID: "ignores-cancel", Timeout: 50 * time.Millisecond, Run: func(context.Context, *check.Env) check.Result {
			<-released
			return check.Passf("too late")
		}},
		{ID: "honours-cancel", Timeout: 50 * time.Millisecond, Run: func(ctx context.Context, _ *check.Env) check.Result {
			<-ctx.Done()
			return check.Passf("stopped")
		}},
		{ID: "no-status", Run: func(context.Context, *check.Env) check.Result { return check.Result{} }},
	}
	start := time.Now()
	res := check.Runner{Grace: 100 * time.Millisecond}.Run(context.Background(), env(t), checks)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("runner waited %s for hung checks", d)
	}
	want := []struct {
		id      string
		status  check.Status
		summary string
	}{
		{"ok", check.Pass, "fine"},
		{"panics", check.Error, "check panicked: boom"},
		{"ignores-cancel", check.Error, "ignored cancellation"},
		{"honours-cancel", check.Error, "did not finish within 50ms"},
		{"no-status", check.Error, "no status"},
	}
	for i, w := range want {
		r := res[i]
		if r.ID != w.id || r.Status != w.status || !strings.Contains(r.Summary, w.summary) {
			t.Errorf("result %d = %s %s %q, want %s %s containing %q", i, r.ID, r.Status, r.Summary, w.id, w.status, w.summary)
		}
	}
	if site := res[1].Evidence["stack"]; !strings.Contains(site, "runner_test.go") {
		t.Errorf("panic evidence %q does not point at the panicking check", site)
	}
}

func TestRunnerSkipsWithoutToolchain(t *testing.T) {
	e := env(t)
	e.Toolchain.Err = os.ErrNotExist
	checks := []check.Check{
		{ID: "needs-go", Run: func(context.Context, *check.Env) check.Result { return check.Passf("ran") }},
		{ID: "go.binary", NoToolchain: true, Run: func(context.Context, *check.Env) check.Result { return check.Failf("no go") }},
	}
	res := check.Runner{}.Run(context.Background(), e, checks)
	if res[0].Status != check.Skip || res[0].Evidence["error"] == "" {
		t.Errorf("needs-go = %+v, want skip with the toolchain error", res[0])
	}
	if res[1].Status != check.Fail {
		t.Errorf("go.binary = %+v, want it to run", res[1])
	}
}

func TestSelect(t *testing.T) {
	all := []check.Check{{ID: "a"}, {ID: "b"}, {ID: "slow", Slow: true}}
	ids := func(cs []check.Check) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.ID)
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		only, skip []string
		slow       bool
		want       string
		err        string
	}{
		{want: "a,b"},
		{slow: true, want: "a,b,slow"},
		{only: []string{"slow"}, want: "slow"},
		{skip: []string{"a"}, want: "b"},
		{only: []string{"a", "b"}, skip: []string{"b"}, want: "a"},
		{only: []string{"nope"}, err: `unknown check ID "nope"`},
		{skip: []string{"x"}, err: `unknown check ID "x"`},
	}
	for _, tt := range tests {
		got, err := check.Select(all, tt.only, tt.skip, tt.slow)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Select(%v,%v) error = %v, want %q", tt.only, tt.skip, err, tt.err)
			}
			continue
		}
		if err != nil || ids(got) != tt.want {
			t.Errorf("Select(%v,%v,%v) = %s, %v; want %s", tt.only, tt.skip, tt.slow, ids(got), err, tt.want)
		}
	}
}

func TestReportJSONContract(t *testing.T) {
	tc := &check.Toolchain{Go: "/usr/local/go/bin/go", Env: map[string]string{"GOROOT": "/usr/local/go", "GOVERSION": "go1.26.8"}}
	results := []check.Result{
		{ID: "a", Title: "A", Source: "1", Status: check.Pass, Summary: "ok", Duration: 1500 * time.Microsecond},
		check.Failf("broken").With("path", "/x").WithFix("fix it"),
	}
	rep := check.NewReport(tc, results)
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["schema"] != "gopatrol.check/v1" {
		t.Errorf("schema = %v", got["schema"])
	}
	tcj := got["toolchain"].(map[string]any)
	if tcj["go"] != "/usr/local/go/bin/go" || tcj["goroot"] != "/usr/local/go" || tcj["version"] != "go1.26.8" {
		t.Errorf("toolchain = %v", tcj)
	}
	r0 := got["results"].([]any)[0].(map[string]any)
	for _, k := range []string{"id", "title", "status", "summary", "evidence", "duration_ms", "seed"} {
		if _, ok := r0[k]; !ok {
			t.Errorf("result lacks %q: %v", k, r0)
		}
	}
	if r0["duration_ms"] != 1.5 {
		t.Errorf("duration_ms = %v, want 1.5", r0["duration_ms"])
	}
	r1 := got["results"].([]any)[1].(map[string]any)
	if r1["fix"] != "fix it" || r1["evidence"].(map[string]any)["path"] != "/x" {
		t.Errorf("failing result = %v", r1)
	}
	sum := got["summary"].(map[string]any)
	if sum["pass"] != 1.0 || sum["fail"] != 1.0 || sum["skip"] != 0.0 || sum["warn"] != 0.0 || sum["error"] != 0.0 {
		t.Errorf("summary = %v", sum)
	}
	var back check.Report
	if err := json.Unmarshal(b, &back); err != nil || back.Results[0].Duration != 1500*time.Microsecond {
		t.Errorf("round trip: %v %+v", err, back.Results)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		statuses   []check.Status
		failOnWarn bool
		want       int
	}{
		{[]check.Status{check.Pass, check.Skip, check.Error}, false, 0},
		{[]check.Status{check.Pass, check.Warn}, false, 0},
		{[]check.Status{check.Pass, check.Warn}, true, 1},
		{[]check.Status{check.Fail}, false, 1},
	}
	for _, tt := range tests {
		var rs []check.Result
		for _, s := range tt.statuses {
			rs = append(rs, check.Result{Status: s})
		}
		if got := check.NewReport(nil, rs).ExitCode(tt.failOnWarn); got != tt.want {
			t.Errorf("%v failOnWarn=%v: exit %d, want %d", tt.statuses, tt.failOnWarn, got, tt.want)
		}
	}
}

func TestRunnerInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	checks := []check.Check{{ID: "waits", Run: func(ctx context.Context, _ *check.Env) check.Result {
		cancel() // the user presses Ctrl-C while the check runs
		<-ctx.Done()
		return check.Passf("stopped")
	}}}
	res := check.Runner{}.Run(ctx, env(t), checks)[0]
	if res.Status != check.Error || res.Summary != "interrupted" {
		t.Errorf("result = %s %q, want error \"interrupted\"", res.Status, res.Summary)
	}
}

func TestRunnerValidateRejectsNegativeTimeout(t *testing.T) {
	for _, tt := range []struct {
		timeout time.Duration
		ok      bool
	}{
		{-time.Second, false},
		{-1, false},
		{0, true},
		{30 * time.Second, true},
	} {
		err := check.Runner{Timeout: tt.timeout}.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("Validate(%s) = %v, want ok %v", tt.timeout, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), tt.timeout.String()) {
			t.Errorf("error %q does not name %s", err, tt.timeout)
		}
	}
}

// --timeout bounds every check, those with a timeout of their own too.
func TestRunnerTimeoutBoundsChecksWithTheirOwn(t *testing.T) {
	released := make(chan struct{})
	t.Cleanup(func() { close(released) })
	c := check.Check{ID: "own-timeout", Timeout: time.Hour, Run: func(ctx context.Context, _ *check.Env) check.Result {
		select {
		case <-ctx.Done():
			return check.Passf("stopped")
		case <-released:
			return check.Passf("not bounded")
		}
	}}
	done := make(chan check.Result, 1)
	go func() {
		done <- check.Runner{Timeout: 50 * time.Millisecond}.Run(context.Background(), env(t), []check.Check{c})[0]
	}()
	select {
	case res := <-done:
		if res.Status != check.Error || !strings.Contains(res.Summary, "50ms") {
			t.Errorf("result %s: %s, want error naming the 50ms timeout", res.Status, res.Summary)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the runner's timeout did not bound a check with its own timeout")
	}
}
