package patrol

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

func TestCheckRuleScope(t *testing.T) {
	tests := []struct {
		name, rule string
		scope      Scope
		problem    string // a problem naming this field, "" for none
	}{
		{"default all", "{name: a, type: check, target: gocache.*}", ScopeAll, ""},
		{"host", "{name: a, type: check, target: gocache.*, scope: host}", ScopeHost, ""},
		{"environments", "{name: a, type: check, target: gocache.*, scope: environments}", ScopeEnvironments, ""},
		{"bad value", "{name: a, type: check, target: gocache.*, scope: hosts}", "", `field "scope": "hosts": want host`},
		{"not a check rule", "{name: a, type: http, target: 'http://127.0.0.1/', scope: host}", "", `field "scope": only check rules`},
		{"the engine's label", "{name: a, type: check, target: gocache.*, labels: {environment.id: x}}", "", `field "labels": "environment.id"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, probs := ParseRules("r.yaml", []byte("- "+tt.rule+"\n"))
			if tt.problem != "" {
				if !strings.Contains(probs.Error(), tt.problem) {
					t.Fatalf("problems %q, want one with %q", probs.Error(), tt.problem)
				}
				return
			}
			if len(probs) > 0 || len(rules) != 1 || rules[0].Scope != tt.scope {
				t.Fatalf("rules %+v, problems %v: want scope %q", rules, probs, tt.scope)
			}
		})
	}
}

// A promtool-like test of check rules over environments: a rule fires per
// environment; unreachable keeps the last state; a scope keeps a rule to
// the host or to the environments.
func TestEnvironmentRuleTests(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "r.yaml", `
- {name: gocache, type: check, target: "gocache.*"}
- {name: gocache-host, type: check, target: "gocache.*", scope: host}
- {name: goflags-envs, type: check, target: "env.config", scope: environments}
`)
	p := filepath.Join(dir, "t.yaml")
	os.WriteFile(p, []byte(`
rule_files: [r.yaml]
tests:
  - name: one CI user's GOCACHE breaks
    series:
      - {check: gocache.writable, values: "0x7"}
      - {check: env.config, values: "2x7"}
      - {check: gocache.writable, environment: ci-1, values: "pass fail unreachable unreachable pass pass pass pass"}
      - {check: gocache.writable, environment: ci-2, values: "0x7"}
      - {check: env.config, environment: ci-2, values: "pass pass fail 0x4"}
    expect:
      - {eval_time: 0m, firing: []}
      - {eval_time: 1m, firing: [gocache@ci-1]}
      - {eval_time: 2m, firing: [gocache@ci-1, goflags-envs@ci-2]}
      - {eval_time: 3m, firing: [gocache@ci-1, goflags-envs@ci-2]}
      - {eval_time: 4m, firing: [gocache@ci-1, goflags-envs@ci-2]}
      - {eval_time: 5m, firing: [gocache@ci-1]}
      - {eval_time: 6m, firing: []}
`), 0o644)
	fails, err := RunTestFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fails {
		t.Error(f)
	}
}

// hostChecks is the agent's own patrol: every check passes.
type hostChecks []string

func (h hostChecks) IDs() []string { return h }
func (h hostChecks) Run(_ context.Context, ids []string) []check.Result {
	out := make([]check.Result, len(ids))
	for i, id := range ids {
		out[i] = check.Result{ID: id, Status: check.Pass}
	}
	return out
}

// recorded keeps what the engine gives its instruments.
type recorded struct {
	results []Result
	scores  []GroupScore
}

func (r *recorded) RecordResult(_ context.Context, res Result)  { r.results = append(r.results, res) }
func (r *recorded) RecordScore(_ context.Context, g GroupScore) { r.scores = append(r.scores, g) }

// envPatrols are the environments' latest patrols, set by the test.
type envPatrols struct{ list []EnvironmentResult }

func (e *envPatrols) Environments() []EnvironmentResult { return e.list }

// Episodes, notifications and escalation work per (rule, environment):
// the failing environment fires and escalates alone, with its identity as
// annotations; unreachable does not resolve it; leaving the inventory
// resolves it saying so, and its escalated group recovers.
func TestEnvironmentEpisodesAndEscalation(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "r.yaml", `
- {name: gocache, type: check, target: "gocache.*", weight: 60, labels: {service: go-toolchain}, notify: [alertmanager]}
`)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var events []Event
	envs := &envPatrols{}
	rec := &recorded{}
	e, err := New(Config{StateDir: t.TempDir(), Checks: hostChecks{"gocache.writable", "env.config"}, Environments: envs, Instruments: rec,
		Now: func() time.Time { return now }, Events: func(ev Event) { events = append(events, ev) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Load(dir); err != nil {
		t.Fatal(err)
	}
	identity := map[string]string{"user.id": "1001", "container.id": "abc"}
	fail := EnvironmentResult{ID: "ci-1", Identity: identity, Results: []check.Result{
		{ID: "gocache.writable", Status: check.Fail, Summary: "GOCACHE /cache not writable"}, {ID: "env.config", Status: check.Pass}}}
	good := EnvironmentResult{ID: "ci-2", Results: []check.Result{{ID: "gocache.writable", Status: check.Pass}}}
	cycle := func(list ...EnvironmentResult) Cycle {
		t.Helper()
		envs.list = list
		events = nil
		c, err := e.EvaluateAll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Minute)
		return c
	}
	kinds := func() []string {
		var out []string
		for _, ev := range events {
			out = append(out, string(ev.Kind)+" "+ev.Group)
		}
		return out
	}
	const envGroup = "environment.id=ci-1,service=go-toolchain"

	c := cycle(fail, good)
	if got := kinds(); !slices.Equal(got, []string{"fire " + envGroup}) {
		t.Fatalf("events %v, want one firing of ci-1's group", got)
	}
	if ev := events[0]; ev.Labels[LabelEnvironment] != "ci-1" || ev.Labels["check"] != "gocache.writable" ||
		ev.Annotations["user.id"] != "1001" || ev.Annotations["container.id"] != "abc" {
		t.Errorf("firing %+v: want the environment's ID as a label, its identity as annotations", ev)
	}
	var hostSeries, envSeries int
	for _, r := range c.Results {
		if r.Labels[LabelEnvironment] == "" {
			hostSeries++
			if r.Firing {
				t.Errorf("the host's series fires: %+v", r)
			}
		} else {
			envSeries++
		}
	}
	if hostSeries != 1 || envSeries != 2 {
		t.Errorf("%d host and %d environment series, want 1 and 2: %+v", hostSeries, envSeries, c.Results)
	}

	// Still failing: the environment's group escalates after 3 scores
	// under 70 (the first, at 0 minutes, is 100); the host's group stays
	// at 100.
	cycle(fail, good)
	cycle(fail, good)
	c = cycle(fail, good)
	if got := kinds(); !slices.Equal(got, []string{"escalate " + envGroup}) {
		t.Fatalf("events %v, want ci-1's group escalated", got)
	}
	if ev := events[0]; ev.Labels[LabelEnvironment] != "ci-1" || len(ev.Breaching) != 1 || ev.Breaching[0].Labels[LabelEnvironment] != "ci-1" {
		t.Errorf("escalation %+v: want ci-1's labels and its breaching series", ev)
	}
	for _, g := range c.Scores {
		if g.Group == "service=go-toolchain" && (g.Score != 100 || g.Escalated) {
			t.Errorf("the host's group: %+v, want 100 and quiet", g)
		}
	}
	// Environment IDs are unbounded: not the instruments' series.
	for _, r := range rec.results {
		if r.Labels[LabelEnvironment] != "" {
			t.Errorf("an environment's series reached the instruments: %+v", r)
		}
	}
	for _, g := range rec.scores {
		if g.Group != "service=go-toolchain" {
			t.Errorf("group %q reached the instruments, want only the host's", g.Group)
		}
	}
	if len(rec.results) == 0 || len(rec.scores) == 0 {
		t.Errorf("the host's series and group were not recorded: %d results, %d scores", len(rec.results), len(rec.scores))
	}

	// Unreachable: the episode keeps its state, no resolve (the rule
	// test above shows it resolving only after 3 healthy patrols).
	unreachable := EnvironmentResult{ID: "ci-1", Identity: identity, Unknown: "no process left in its mount namespace"}
	for range 4 {
		c = cycle(unreachable, good)
		if len(events) != 0 {
			t.Fatalf("unreachable gave events %v", kinds())
		}
	}
	firing := false
	for _, r := range c.Results {
		if r.Labels[LabelEnvironment] == "ci-1" {
			firing = r.Firing
			if !strings.Contains(r.Error, "keeps its last state") {
				t.Errorf("unreachable result %+v: want an error saying the rule keeps its last state", r)
			}
		}
	}
	if !firing {
		t.Errorf("ci-1 stopped firing while unreachable")
	}

	// Gone from the inventory: resolved as gone, then the group recovers
	// and its state is dropped.
	gone := e.ForgetEnvironment("ci-1", "disappeared")
	if len(gone) != 1 || gone[0].Kind != EventResolve || !strings.Contains(gone[0].Message, "left the inventory (disappeared)") {
		t.Fatalf("forget: %+v, want one resolve saying it left the inventory", gone)
	}
	cycle(good)
	if got := kinds(); !slices.Equal(got, []string{"recover " + envGroup}) {
		t.Fatalf("events %v, want ci-1's group recovered", got)
	}
	cycle(good)
	if st := e.Status(); slices.ContainsFunc(st.Groups, func(g GroupScore) bool { return g.Group == envGroup }) {
		t.Errorf("ci-1's group is still in the state: %+v", st.Groups)
	}
}

// A fix runs only in the agent's own environment: a rule with remediate
// that fires for an environment skips it, saying why.
func TestEnvironmentFiringIsNotRemediated(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "r.yaml", "- {name: gocache, type: check, target: gocache.writable, remediate: gocache.writable}\n")
	envs := &envPatrols{list: []EnvironmentResult{{ID: "ci-1", Results: []check.Result{{ID: "gocache.writable", Status: check.Fail}}}}}
	e, err := New(Config{Checks: hostChecks{"gocache.writable"}, Environments: envs, Remediation: RemediationConfig{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Load(dir); err != nil {
		t.Fatal(err)
	}
	c, err := e.EvaluateAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Actions) != 1 || c.Actions[0].Outcome != OutcomeSkipped || !strings.Contains(c.Actions[0].Reason, "environment ci-1") {
		t.Errorf("actions %+v: want the remediation skipped for environment ci-1", c.Actions)
	}
}
