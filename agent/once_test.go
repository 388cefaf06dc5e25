package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/patrol"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

// --once is one full cycle: besides the patrol and the export, it
// evaluates the rules once (a breaching exec rule's value reaches the
// receiver and its webhook gets the firing, delivered before the exit) and
// asks the probe plugins for their cloud metrics once (the example
// plugin's dropped packets reach the receiver).
func TestOnceRunsRulesAndCollects(t *testing.T) {
	plugins := pluginDir(t, "example", "../plugins/example")
	tmp := t.TempDir()
	drops := filepath.Join(tmp, "drops")
	identity := filepath.Join(tmp, "identity.json")
	rules := filepath.Join(tmp, "rules")
	os.WriteFile(drops, []byte("4242\n"), 0o644)
	os.WriteFile(identity, []byte(`{"Region": "moon-1", "Instance": "i-42"}`), 0o644)
	os.Mkdir(rules, 0o755)
	if err := os.WriteFile(filepath.Join(rules, "once.yaml"), []byte(`
- name: always-breaching
  type: exec
  target: /bin/false
  threshold: "ge(1)"
  labels: {service: once}
  notify: ["webhook:ops"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	hook := newCounter(t)
	cfg := filepath.Join(tmp, "agent.yaml")
	os.WriteFile(cfg, []byte(quietConfig+`state_dir: `+filepath.Join(tmp, "state")+`
plugins:
  dir: `+plugins+`
rules:
  dir: `+rules+`
  allow_exec: true
notify:
  webhooks:
    ops: {url: "`+hook.URL+`", secret: {env: GOPATROL_TEST_HOOK_KEY}}
  retry: {initial: 100ms, max: 1s, poll: 200ms}
`), 0o644)

	r := otlptest.Start(t, otlptest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "agent", "--once", "--config", cfg)
	cmd.Env = append(os.Environ(), append(otlpEnv(r, time.Hour), "GOPATROL_TEST_HOOK_KEY=hook-key",
		"EXAMPLE_CLOUD_IDENTITY_FILE="+identity, "EXAMPLE_CLOUD_DROPS_FILE="+drops)...)
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code > 1 {
		t.Fatalf("agent --once exit %d\n%s", code, out)
	}
	reqs := r.Wait(t, 1, 10*time.Second)
	if v, _ := latest(reqs, "gopatrol.rule.value", map[string]string{"gopatrol.rule.name": "always-breaching"}); v != 1 {
		t.Errorf("gopatrol.rule.value{always-breaching} = %v, want 1 (exec exit 1)\n%s", v, out)
	}
	if v, _ := latest(reqs, "gopatrol.cloud.network.allowance_exceeded", map[string]string{"gopatrol.probe.plugin": "example"}); v != 4242 {
		t.Errorf("gopatrol.cloud.network.allowance_exceeded{example} = %v, want 4242 from the drops file\n%s", v, out)
	}
	if n := hook.count(); n != 1 {
		t.Errorf("the webhook got %d requests before --once exited, want the one firing\n%s", n, out)
	}
	audit := auditKinds(t, filepath.Join(tmp, "state"))
	if len(audit[patrol.AuditNotification]) != 1 {
		t.Errorf("audit notifications %+v, want the one delivery", audit[patrol.AuditNotification])
	}
}
