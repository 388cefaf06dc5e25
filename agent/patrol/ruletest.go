package patrol

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gopatrol/gopatrol/agent/check"
)

// TestFile is a unit test of rules, in the manner of `promtool test rules`:
// the rule files under test, input series, and the rules expected to be
// firing at given times.
//
//	rule_files: [../rules/*.yaml]      # globs, relative to the test file
//	evaluation_interval: 1m
//	host_id: node-1                     # for canary selection
//	tests:
//	  - name: EACCES burst fires
//	    series:
//	      - metric: 'gopatrol.file_access.failures{error.type="EACCES"}'
//	        values: "0+0x3 10+10x5"
//	      - check: gocache.writable       # pass warn fail error, or 0 1 2
//	        values: "pass fail fail"
//	      - rule: replication-lag          # the rule's value itself
//	        values: "1 2 _ 90"             # _ is an unknown evaluation
//	      - check: gocache.writable       # the check in one environment's
//	        environment: ci-1              # patrols; unreachable: it
//	        values: "pass fail unreachable" # could not be entered
//	    expect:
//	      - eval_time: 5m
//	        firing: [gocache-eacces, doctor@ci-1] # exactly these fire then;
//	                                       # rule@ID for an environment's
type TestFile struct {
	RuleFiles          []string   `yaml:"rule_files"`
	EvaluationInterval string     `yaml:"evaluation_interval"`
	HostID             string     `yaml:"host_id"`
	Tests              []RuleTest `yaml:"tests"`
}

// RuleTest is one test case.
type RuleTest struct {
	Name   string        `yaml:"name"`
	Series []TestSeries  `yaml:"series"`
	Expect []Expectation `yaml:"expect"`
}

// TestSeries is one input: a metric point, a check's status, or a rule's
// value, one value per evaluation.
type TestSeries struct {
	Metric string `yaml:"metric"`
	Check  string `yaml:"check"`
	// Environment makes a check series that of an environment's patrols.
	Environment string `yaml:"environment"`
	Rule        string `yaml:"rule"`
	Values      string `yaml:"values"`
}

// Expectation is which rules fire after the evaluation at EvalTime.
type Expectation struct {
	EvalTime string   `yaml:"eval_time"`
	Firing   []string `yaml:"firing"`
}

// TestFailure is one expectation that did not hold.
type TestFailure struct {
	Test, EvalTime string
	Want, Got      []string
}

func (f TestFailure) String() string {
	return fmt.Sprintf("test %q at %s: firing %v, want %v", f.Test, f.EvalTime, f.Got, f.Want)
}

// RunTestFile runs every test of a test file. It returns the failed
// expectations; an error is a test file that cannot run.
func RunTestFile(path string) ([]TestFailure, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules test: %w", err)
	}
	var tf TestFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		return nil, fmt.Errorf("rules test %s: %w", path, err)
	}
	interval := time.Minute
	if tf.EvaluationInterval != "" {
		if interval, err = time.ParseDuration(tf.EvaluationInterval); err != nil || interval <= 0 {
			return nil, fmt.Errorf("rules test %s: evaluation_interval %q: want a duration such as 1m", path, tf.EvaluationInterval)
		}
	}
	var rules []Rule
	var probs Problems
	for _, g := range tf.RuleFiles {
		if !filepath.IsAbs(g) {
			g = filepath.Join(filepath.Dir(path), g)
		}
		files, err := filepath.Glob(g)
		if err != nil || len(files) == 0 {
			return nil, fmt.Errorf("rules test %s: rule_files %q matches no file", path, g)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("rules test: %w", err)
			}
			rs, ps := ParseRules(f, data)
			rules, probs = append(rules, rs...), append(probs, ps...)
		}
	}
	if probs = append(probs, duplicates(rules)...); len(probs) > 0 {
		return nil, probs
	}
	var fails []TestFailure
	for _, tc := range tf.Tests {
		f, err := runRuleTest(tf, tc, rules, interval)
		if err != nil {
			return fails, fmt.Errorf("rules test %s: test %q: %w", path, tc.Name, err)
		}
		fails = append(fails, f...)
	}
	return fails, nil
}

func runRuleTest(tf TestFile, tc RuleTest, rules []Rule, interval time.Duration) ([]TestFailure, error) {
	in := &testInputs{rule: map[string][]*float64{}, check: map[string][]*float64{}, env: map[string]map[string][]*float64{}}
	steps := 0
	byName := map[string]Rule{}
	for _, r := range rules {
		byName[r.Name] = r
	}
	for _, s := range tc.Series {
		vals, err := expandEnvSeries(s)
		if err != nil {
			return nil, err
		}
		steps = max(steps, len(vals))
		switch {
		case s.Environment != "":
			if s.Check == "" {
				return nil, fmt.Errorf("series of environment %q: name its check", s.Environment)
			}
			if in.env[s.Environment] == nil {
				in.env[s.Environment] = map[string][]*float64{}
			}
			in.env[s.Environment][s.Check] = vals
		case s.Rule != "":
			if _, ok := byName[s.Rule]; !ok {
				return nil, fmt.Errorf("series for rule %q: no such rule in rule_files", s.Rule)
			}
			in.rule[s.Rule] = vals
		case s.Check != "":
			in.check[s.Check] = vals
		case s.Metric != "":
			q, err := parseMetricQuery(s.Metric)
			if err != nil || q.Func != "" {
				return nil, fmt.Errorf("series metric %q: want NAME{attr=\"value\",…}", s.Metric)
			}
			attrs := map[string]string{}
			for _, m := range q.Match {
				attrs[m.Key] = m.Value
			}
			in.metrics = append(in.metrics, testMetric{pt: MetricPoint{Name: q.Name, Attrs: attrs}, vals: vals})
		default:
			return nil, errors.New("a series names a metric, a check or a rule")
		}
	}
	// Only rules with an input run: the others have nothing to measure.
	var set RuleSet
	for _, r := range rules {
		if in.feeds(r) {
			set.Rules = append(set.Rules, r)
		}
	}
	clk := &testClock{t: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
	e, err := New(Config{HostID: tf.HostID, Checks: in, Metrics: in, Environments: in, Now: clk.now})
	if err != nil {
		return nil, err
	}
	e.override = func(r Rule) Probe {
		if _, ok := in.rule[r.Name]; ok {
			return ProbeFunc(func(context.Context) []Sample {
				v := in.at(in.rule[r.Name])
				if v == nil {
					return []Sample{{Err: errors.New("no value")}}
				}
				return []Sample{{Value: *v}}
			})
		}
		return nil
	}
	if err := e.Swap(&set); err != nil {
		return nil, err
	}
	want := map[int]Expectation{}
	last := -1
	for _, x := range tc.Expect {
		d, err := time.ParseDuration(x.EvalTime)
		if err != nil || d < 0 || d%interval != 0 {
			return nil, fmt.Errorf("eval_time %q: want a multiple of the evaluation interval %s", x.EvalTime, interval)
		}
		i := int(d / interval)
		want[i] = x
		last = max(last, i)
	}
	var fails []TestFailure
	for i := 0; i <= max(last, steps-1); i++ {
		in.step = i
		c, err := e.EvaluateAll(context.Background())
		if err != nil {
			return nil, err
		}
		if x, ok := want[i]; ok {
			firing := map[string]bool{}
			for _, r := range c.Results {
				if r.Firing {
					name := r.Rule
					if env := r.Labels[LabelEnvironment]; env != "" {
						name += "@" + env
					}
					firing[name] = true
				}
			}
			got := slices.Sorted(func(yield func(string) bool) {
				for k := range firing {
					if !yield(k) {
						return
					}
				}
			})
			exp := slices.Clone(x.Firing)
			sort.Strings(exp)
			if !slices.Equal(got, exp) {
				fails = append(fails, TestFailure{Test: tc.Name, EvalTime: x.EvalTime, Want: exp, Got: got})
			}
		}
		clk.t = clk.t.Add(interval)
	}
	return fails, nil
}

type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

type testMetric struct {
	pt   MetricPoint
	vals []*float64
}

// testInputs serves a rule test's series as the engine's checks, metrics
// and rule values at the current step.
type testInputs struct {
	step    int
	rule    map[string][]*float64
	check   map[string][]*float64
	env     map[string]map[string][]*float64 // environment, check: values
	metrics []testMetric
}

// unreachable marks a step where an environment could not be entered.
var unreachable = math.Inf(-1)

// expandEnvSeries is ExpandSeries, with the word unreachable in the
// series of an environment.
func expandEnvSeries(s TestSeries) ([]*float64, error) {
	if s.Environment == "" {
		return ExpandSeries(s.Values, s.Check != "")
	}
	var out []*float64
	for _, tok := range strings.Fields(s.Values) {
		if tok == "unreachable" {
			out = append(out, &unreachable)
			continue
		}
		vals, err := ExpandSeries(tok, true)
		if err != nil {
			return nil, err
		}
		out = append(out, vals...)
	}
	return out, nil
}

// Environments are the environments' patrols at the current step.
func (in *testInputs) Environments() []EnvironmentResult {
	var out []EnvironmentResult
	for _, id := range slices.Sorted(maps.Keys(in.env)) {
		er := EnvironmentResult{ID: id, Identity: map[string]string{"user.id": "test"}}
		for _, check := range slices.Sorted(maps.Keys(in.env[id])) {
			v := in.at(in.env[id][check])
			switch {
			case v == &unreachable:
				er.Unknown, er.Results = "unreachable in the test series", nil
			case er.Unknown == "":
				er.Results = append(er.Results, in.result(check, v))
			}
		}
		if er.Unknown != "" || len(er.Results) > 0 {
			out = append(out, er)
		}
	}
	return out
}

func (in *testInputs) at(vals []*float64) *float64 {
	if in.step < len(vals) {
		return vals[in.step]
	}
	return nil
}

func (in *testInputs) feeds(r Rule) bool {
	switch {
	case in.rule[r.Name] != nil:
		return true
	case r.Type == TypeCheck:
		return len(matchChecks(in.IDs(), r.Target)) > 0
	case r.Type == TypeMetric:
		q, _ := parseMetricQuery(r.Query)
		return slices.ContainsFunc(in.metrics, func(m testMetric) bool { return q.matches(m.pt) })
	}
	return false
}

func (in *testInputs) IDs() []string {
	ids := make([]string, 0, len(in.check))
	for id := range in.check {
		ids = append(ids, id)
	}
	for _, checks := range in.env {
		for id := range checks {
			if _, ok := in.check[id]; !ok && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

func (in *testInputs) Run(_ context.Context, ids []string) []check.Result {
	out := make([]check.Result, 0, len(ids))
	for _, id := range ids {
		if vals, ok := in.check[id]; ok { // else only environments have it
			out = append(out, in.result(id, in.at(vals)))
		}
	}
	return out
}

func (in *testInputs) result(id string, v *float64) check.Result {
	statuses := []check.Status{check.Pass, check.Warn, check.Fail}
	r := check.Result{ID: id, Status: check.Error, Summary: "no value in the series"}
	if v != nil && *v >= 0 && int(*v) < len(statuses) {
		r.Status, r.Summary = statuses[int(*v)], "from the test series"
	}
	return r
}

func (in *testInputs) Snapshot() []MetricPoint {
	var out []MetricPoint
	for _, m := range in.metrics {
		if v := in.at(m.vals); v != nil {
			pt := m.pt
			pt.Value = *v
			out = append(out, pt)
		}
	}
	return out
}

// ExpandSeries expands promtool's series notation: numbers, "a+bxn" and
// "a-bxn" (a, a±b, … n more), "_" and "_xn" for missing samples. With
// checkWords, pass, warn, fail and error stand for 0, 1, 2 and missing.
func ExpandSeries(s string, checkWords bool) ([]*float64, error) {
	var out []*float64
	for _, tok := range strings.Fields(s) {
		if checkWords {
			switch tok {
			case "pass", "skip", "warn", "fail":
				v := map[string]float64{"pass": 0, "skip": 0, "warn": 1, "fail": 2}[tok]
				out = append(out, &v)
				continue
			case "error":
				out = append(out, nil)
				continue
			}
		}
		base, times, hasTimes := strings.Cut(tok, "x")
		n := 0
		if hasTimes {
			var err error
			if n, err = strconv.Atoi(times); err != nil || n < 0 {
				return nil, fmt.Errorf("series %q: %q: want a+bxn", s, tok)
			}
		}
		if base == "_" {
			for range n + 1 {
				out = append(out, nil)
			}
			continue
		}
		start, step := base, "0"
		if i := strings.LastIndexAny(base, "+-"); i > 0 && hasTimes {
			start, step = base[:i], base[i:]
		}
		a, err1 := strconv.ParseFloat(start, 64)
		b, err2 := strconv.ParseFloat(strings.TrimPrefix(step, "+"), 64)
		if err1 != nil || err2 != nil || math.IsNaN(a) {
			return nil, fmt.Errorf("series %q: %q is not a number or a+bxn", s, tok)
		}
		if !hasTimes {
			out = append(out, &a)
			continue
		}
		for i := range n + 1 {
			v := a + float64(i)*b
			out = append(out, &v)
		}
	}
	return out, nil
}
