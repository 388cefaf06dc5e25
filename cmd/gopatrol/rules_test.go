package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRulesValidate(t *testing.T) {
	out, errOut, code := gopatrol(t, nil, "rules", "validate", "../../deploy/rules")
	if code != 0 || !strings.Contains(out, "rules OK") {
		t.Fatalf("shipped rules: exit %d\n%s%s", code, out, errOut)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("- name: lag\n  type: sql\n  query: q\n  threshold: gt(sixty)\n"), 0o644)
	_, errOut, code = gopatrol(t, nil, "rules", "validate", dir)
	if code != 2 || !strings.Contains(errOut, "a.yaml:4: rule \"lag\": field \"threshold\"") {
		t.Fatalf("bad rules: exit %d, stderr %q", code, errOut)
	}
	if _, _, code = gopatrol(t, nil, "rules", "validate", filepath.Join(dir, "missing")); code != 2 {
		t.Fatalf("missing dir: exit %d", code)
	}
}

func TestRulesTestCommand(t *testing.T) {
	out, errOut, code := gopatrol(t, nil, "rules", "test", "../../deploy/rules/tests/default_test.yaml")
	if code != 0 || !strings.HasPrefix(out, "ok ") {
		t.Fatalf("shipped tests: exit %d\n%s%s", code, out, errOut)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("- {name: lag, type: sql, query: q, threshold: gt(60)}\n"), 0o644)
	tf := filepath.Join(dir, "t.yaml")
	os.WriteFile(tf, []byte("rule_files: [r.yaml]\ntests:\n- name: wrong\n  series: [{rule: lag, values: '0 90'}]\n  expect: [{eval_time: 1m, firing: []}]\n"), 0o644)
	out, _, code = gopatrol(t, nil, "rules", "test", tf)
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, "firing [lag], want []") {
		t.Fatalf("failing test: exit %d\n%s", code, out)
	}
}

func TestRulesEvalReportAudit(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	bad := filepath.Join(dir, "bad.sh")
	os.WriteFile(bad, []byte("#!/bin/sh\necho disk full\nexit 1\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(`
- {name: disk, type: exec, target: "`+bad+`", stage: shadow}
- {name: true, type: exec, target: /bin/true}
- {name: lag, type: sql, query: q, threshold: gt(60)}
`), 0o644)
	// Without --allow-exec the exec rules are unknown, not run.
	out, _, code := gopatrol(t, nil, "rules", "eval", dir, "--once")
	if code != 0 || !strings.Contains(out, "exec rules are refused") || !strings.Contains(out, "no sql evaluator") {
		t.Fatalf("eval without exec: exit %d\n%s", code, out)
	}
	out, errOut, code := gopatrol(t, nil, "rules", "eval", dir, "--once", "--allow-exec", "-o", "json", "--state-dir", state, "--host-id", "n1")
	// A breaching shadow rule does not make the exit code 1.
	if code != 0 {
		t.Fatalf("eval: exit %d\n%s%s", code, out, errOut)
	}
	var c struct {
		Results []struct {
			Rule    string
			Value   float64
			Breach  bool
			Message string
		}
		Scores []struct{ Group string }
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(c.Results) != 3 || c.Results[0].Rule != "disk" || !c.Results[0].Breach || c.Results[0].Message != "disk full" || len(c.Scores) != 1 {
		t.Fatalf("cycle = %+v", c)
	}
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("- {name: disk, type: exec, target: \""+bad+"\"}\n"), 0o644)
	if _, _, code = gopatrol(t, nil, "rules", "eval", dir, "--once", "--allow-exec", "--state-dir", state); code != 1 {
		t.Fatalf("an active breaching rule: exit %d, want 1", code)
	}
	out, _, code = gopatrol(t, nil, "rules", "audit", "--state-dir", state)
	if code != 0 || !strings.Contains(out, "disk changed (stage shadow → active)") || !strings.Contains(out, "lag removed") {
		t.Fatalf("audit: exit %d\n%s", code, out)
	}
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("- {name: disk, type: exec, target: \""+bad+"\", stage: canary, canary_percent: 0}\n"), 0o644)
	out, _, code = gopatrol(t, nil, "rules", "report", dir, "--state-dir", state)
	if code != 0 || !strings.Contains(out, "disk") || !strings.Contains(out, "canary  shadow") || !strings.Contains(out, "50.00%") {
		t.Fatalf("report: exit %d\n%s", code, out)
	}
}
