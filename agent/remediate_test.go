package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/cache"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/agent/patrol"
)

// A check rule on gocache.writable in a world where the build user
// (nobody) cannot create GOCACHE: the engine, with the agent's remedier,
// fires, applies the fix once, audits the check before and after, and the
// next evaluations pass until the episode ends.
func TestRemedierRepairsGocache(t *testing.T) {
	w := checktest.New(t)
	w.AsUser("nobody")
	parent := checktest.Mkdir(t, filepath.Join(w.Dir, "root-owned"), 0o755)
	gocache := filepath.Join(parent, "go-build")
	w.Setenv("GOCACHE=" + gocache)
	env := w.Env()

	rules, state := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(rules, "r.yaml"), []byte(`
- name: build-cache
  type: check
  target: gocache.writable
  remediate: gocache.writable
`), 0o644)
	cfg := defaultRemediation()
	cfg.Enabled = true
	e, err := patrol.New(patrol.Config{StateDir: state,
		Checks:      patrol.Doctor{Env: env, Checks: cache.Checks()},
		Remediation: remediation(cfg, env, defaultFix)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Load(rules); err != nil {
		t.Fatal(err)
	}
	c, err := e.EvaluateAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Results) != 1 || !c.Results[0].Firing {
		t.Fatalf("results = %+v, want gocache.writable failing", c.Results)
	}
	if len(c.Actions) != 1 || c.Actions[0].Outcome != patrol.OutcomeHeld {
		t.Fatalf("actions = %+v, want one held repair", c.Actions)
	}
	fi, err := os.Stat(gocache)
	if err != nil {
		t.Fatalf("GOCACHE not created: %v", err)
	}
	if u := env.Target.User; !ownedBy(fi, u.UID) {
		t.Errorf("GOCACHE %s is not owned by %s", gocache, u.Name)
	}
	c, err = e.EvaluateAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Results[0].Breach || len(c.Actions) != 0 {
		t.Errorf("after the fix: %+v, actions %+v", c.Results[0], c.Actions)
	}
	all, err := patrol.ReadAudit(patrol.AuditPath(state))
	if err != nil {
		t.Fatal(err)
	}
	var line *patrol.AuditEntry
	for i := range all {
		if all[i].Kind == patrol.AuditRemediation {
			line = &all[i]
		}
	}
	if line == nil || line.Before == nil || line.After == nil {
		t.Fatalf("no remediation line with before and after in %+v", all)
	}
	if line.Before.Status != string(check.Fail) || !strings.Contains(line.Before.Summary, "nobody") ||
		line.After.Status != string(check.Pass) || !strings.Contains(line.Changes[0], gocache) {
		t.Errorf("audit line = %+v %+v %+v", line, line.Before, line.After)
	}
}

// A rule naming a check this agent has no automatable fix for is refused
// by the fix runner, and a failing fix runner is an error: both audited,
// both counted against the repair rate.
func TestRemedierRefusalAndError(t *testing.T) {
	env := &check.Env{Target: &check.Target{Root: "/", Environ: []string{"GOCACHE=" + t.TempDir()}}}
	rem := remedier{env: env, fix: defaultFix}
	at, err := rem.Remediate(context.Background(), patrol.Rule{Name: "r"}, "goroot.valid")
	if err != nil || at.Refused == "" || len(at.Changes) != 0 {
		t.Errorf("goroot.valid: %+v, %v; want refused", at, err)
	}
	failing := remedier{env: env, fix: func(context.Context, *check.Env, string, bool) (patrol.Attempt, error) {
		return patrol.Attempt{}, os.ErrPermission
	}}
	if _, err := failing.Remediate(context.Background(), patrol.Rule{Name: "r"}, "gocache.writable"); err == nil ||
		!strings.Contains(err.Error(), "rule r: fix of gocache.writable") {
		t.Errorf("err = %v, want the rule and check named", err)
	}
	if rc := remediation(RemediationConfig{Enabled: true}, env, nil); rc.Remedier != nil {
		t.Errorf("no fix runner must leave no remedier, so remediate actions are refused")
	}
}

func TestRemediationConfig(t *testing.T) {
	tests := []struct {
		yaml, key string
	}{
		{"remediation:\n  enabled: true\n", ""},
		{"remediation:\n  max_per_hour: 0\n", "remediation.max_per_hour"},
		{"remediation:\n  timeout: 10ms\n", "remediation.timeout"},
		{"remediation:\n  enable: true\n", "remediation.enable"},
	}
	for _, tt := range tests {
		p := filepath.Join(t.TempDir(), "agent.yaml")
		os.WriteFile(p, []byte(tt.yaml), 0o644)
		cfg, err := Load(p, nil)
		if tt.key == "" {
			if err != nil || !cfg.Remediation.Enabled || cfg.Remediation.MaxPerHour != patrol.DefaultMaxPerHour ||
				cfg.Remediation.Timeout != 2*time.Minute {
				t.Errorf("%q: %+v, %v", tt.yaml, cfg.Remediation, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.key) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: err = %v, want the file and %s named", tt.yaml, err, tt.key)
		}
	}
}

func ownedBy(fi os.FileInfo, uid uint32) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == uid
}
