package patrol

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/catalog"
)

const shipped = "../../deploy/rules"

func TestShippedRulesLoadAgainstTheCatalogue(t *testing.T) {
	set, err := LoadDir(shipped)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Checks: Doctor{Env: &check.Env{}, Checks: catalog.All()}, Metrics: &instruments{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Swap(set); err != nil {
		t.Fatalf("the shipped rules do not build on this agent: %v", err)
	}
	// Every check of the catalogue is covered by a rule.
	ids := map[string]bool{}
	for _, r := range set.Rules {
		if r.Type == TypeCheck {
			for _, id := range matchChecks(Doctor{Checks: catalog.All()}.IDs(), r.Target) {
				if ids[id] {
					t.Errorf("check %s is in two rules", id)
				}
				ids[id] = true
			}
		}
	}
	for _, c := range catalog.All() {
		if !ids[c.ID] {
			t.Errorf("check %s has no rule in %s", c.ID, shipped)
		}
	}
}

func TestShippedRulesTests(t *testing.T) {
	fails, err := RunTestFile(filepath.Join(shipped, "tests", "default_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fails {
		t.Error(f)
	}
}

func TestRuleTestsCanFail(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "r.yaml", "- {name: lag, type: sql, query: q, threshold: gt(60), for: 2}\n")
	test := func(body string) ([]TestFailure, error) {
		p := filepath.Join(dir, "t.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return RunTestFile(p)
	}
	fails, err := test(`
rule_files: [r.yaml]
tests:
  - name: wrong
    series: [{rule: lag, values: "0 61 61 _ 61 0x3"}]
    expect:
      - {eval_time: 1m, firing: [lag]}
      - {eval_time: 2m, firing: [lag]}
      - {eval_time: 3m, firing: []}
`)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(fails)
	if len(fails) != 2 || !strings.Contains(got, "at 1m: firing [], want [lag]") || !strings.Contains(got, "at 3m: firing [lag], want []") {
		t.Errorf("failures = %v", fails)
	}
	for _, bad := range []string{
		"rule_files: [nope.yaml]\n",
		"rule_files: [r.yaml]\ntests: [{name: x, series: [{rule: nope, values: '1'}]}]\n",
		"rule_files: [r.yaml]\ntests: [{name: x, series: [{rule: lag, values: '1+x'}]}]\n",
		"rule_files: [r.yaml]\nbogus: 1\n",
		"rule_files: [r.yaml]\ntests: [{name: x, series: [{rule: lag, values: '1'}], expect: [{eval_time: 90s}]}]\n",
	} {
		if _, err := test(bad); err == nil {
			t.Errorf("%q ran", bad)
		}
	}
}

func TestExpandSeries(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1 2 3", "1 2 3"},
		{"0+10x3", "0 10 20 30"},
		{"5-1x2 _ 7", "5 4 3 _ 7"},
		{"_x2 1e3", "_ _ _ 1000"},
		{"-1 -2+1x1", "-1 -2 -1"},
	}
	for _, tt := range tests {
		vs, err := ExpandSeries(tt.in, false)
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, v := range vs {
			if v == nil {
				parts = append(parts, "_")
			} else {
				parts = append(parts, fmt.Sprint(*v))
			}
		}
		if got := strings.Join(parts, " "); got != tt.want {
			t.Errorf("%q = %q, want %q", tt.in, got, tt.want)
		}
	}
}
