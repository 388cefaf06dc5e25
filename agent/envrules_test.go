package agent_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent"
	"github.com/gopatrol/gopatrol/agent/internal/servertest"
	"github.com/gopatrol/gopatrol/agent/inventory"
	"github.com/gopatrol/gopatrol/agent/patrol"
)

// A check rule over GOCACHE, on an agent that patrols the environments
// of real builds: the build whose GOCACHE its user cannot write raises
// the rule for that environment only, in a real Alertmanager, with the
// environment's ID as a label and its user and mount namespace as
// annotations; the agent's own environment and the healthy build stay
// quiet. When the broken build's namespace is gone, the patrol says
// unreachable and the alert stays: unreachable is not healthy.
func TestCheckRuleFiresForTheBrokenEnvironmentOnly(t *testing.T) {
	w := newEnvWorld(t)
	am := servertest.Alertmanager(t)
	rules := w.rootDir("rules")
	if err := os.WriteFile(filepath.Join(rules, "gocache.yaml"), []byte(`
- name: gocache
  type: check
  target: gocache.writable
  every: 1s
  labels: {service: go-toolchain}
  notify: [alertmanager]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(w.dir, "state")
	cfg := envsConfig(state) + `
rules:
  dir: ` + rules + `
  tick: 200ms
notify:
  alertmanager: {url: "` + am.URL + `"}
  retry: {initial: 100ms, max: 1s, poll: 200ms}
`
	broken := w.build("cache", "gocache.writable", map[string]string{"GOCACHE": w.rootDir("cache-root")})
	good := w.build("good", "", map[string]string{"GOCACHE": w.nobodyDir("cache-good")})
	p := startAgent(t, agentOpts{config: cfg, env: []string{"SECRET_TOKEN=" + envSecret, "OTEL_METRICS_EXPORTER=none"}})
	if body := p.waitReady(t); !strings.Contains(body, "sensors attached") {
		t.Fatalf("/readyz: %s", body)
	}
	broken.start(t, w.unshare, w.setpriv, w.goroot)
	good.start(t, w.unshare, w.setpriv, w.goroot)

	// Both diagnosed: their IDs.
	waitFor(t, 5*time.Minute, "both environments patrolled", func() bool {
		for _, e := range p.envStatus(t).Environments {
			if e.Patrol == nil || e.Patrol.Outcome == inventory.OutcomeUnreachable {
				continue
			}
			switch e.Env.Go {
			case broken.mnt + "/bin/go":
				broken.envID = e.ID
			case good.mnt + "/bin/go":
				good.envID = e.ID
			}
		}
		return broken.envID != "" && good.envID != ""
	})
	var alert amAlert
	waitFor(t, 2*time.Minute, "the broken environment's alert", func() bool {
		for _, a := range amAlerts(t, am.URL, "gocache") {
			if a.Labels["environment_id"] == broken.envID {
				alert = a
				return true
			}
		}
		return false
	})
	if alert.Labels["check"] != "gocache.writable" || alert.Labels["service"] != "go-toolchain" ||
		alert.Annotations["user_id"] != "65534" || alert.Annotations["mount_ns"] == "" ||
		!strings.Contains(alert.Annotations["description"], "gopatrol check --env "+broken.envID) {
		t.Errorf("alert %+v: want the environment's ID and check as labels, its user and namespace as annotations", alert)
	}
	// A few more rule cycles: still one alert, the broken environment's.
	time.Sleep(3 * time.Second)
	for _, a := range amAlerts(t, am.URL, "gocache") {
		if a.Labels["environment_id"] != broken.envID {
			t.Errorf("alert for another environment or the host: %+v", a.Labels)
		}
	}
	firingFor := func() map[string]bool {
		code, body := p.get(t, "/status")
		var st agent.Status
		if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Rules == nil {
			t.Fatalf("/status %d: %v", code, err)
		}
		out := map[string]bool{}
		for _, s := range st.Rules.Firing {
			out[s.Labels[patrol.LabelEnvironment]] = true
		}
		return out
	}
	if f := firingFor(); !f[broken.envID] || f[good.envID] || f[""] || len(f) != 1 {
		t.Errorf("firing series by environment %v, want only %s", f, broken.envID)
	}

	// Its namespace gone: unreachable, and the rule keeps firing.
	broken.stop()
	waitFor(t, 2*time.Minute, "the broken environment patrolled as unreachable", func() bool {
		for _, e := range p.envStatus(t).Environments {
			if e.ID == broken.envID && e.Patrol != nil && e.Patrol.Outcome == inventory.OutcomeUnreachable {
				return true
			}
		}
		return false
	})
	time.Sleep(3 * time.Second) // rule cycles over the unreachable result
	if f := firingFor(); !f[broken.envID] {
		t.Errorf("the unreachable environment's rule was resolved: firing %v", f)
	}
	as := amAlerts(t, am.URL, "gocache")
	if len(as) != 1 || as[0].Labels["environment_id"] != broken.envID || !as[0].EndsAt.After(time.Now()) {
		t.Errorf("alerts %+v: want the unreachable environment's alert still active", as)
	}
	if err := p.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if log := strings.Join(p.log(), "\n"); strings.Contains(log, envSecret) {
		t.Error("the unrelated variable reached the agent's log")
	}
}
