package agent_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/internal/servertest"
	"github.com/gopatrol/gopatrol/agent/patrol"
)

// A real Prometheus scrapes the agent's own /metrics, and a promql rule of
// that agent evaluates against what it scraped: the agent's reload
// counter, absent until a SIGHUP, then 1, which the rule sees go from
// unknown to firing.
func TestPromQLRuleOverAgentsOwnMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the agent listens here; Prometheus scrapes it from its start
	prom := servertest.Prometheus(t, addr)

	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	os.Mkdir(rules, 0o755)
	if err := os.WriteFile(filepath.Join(rules, "self.yaml"), []byte(`
- name: agent-reloaded
  type: promql
  target: self
  query: 'sum(gopatrol_agent_reloads_total{job="test", gopatrol_reload_result="ok"})'
  threshold: "ge(1)"
  every: 500ms
  labels: {service: gopatrol-agent}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, agentOpts{config: quietConfig + `state_dir: ` + filepath.Join(dir, "state") + `
rules:
  dir: ` + rules + `
  tick: 200ms
sources:
  prometheus:
    self: {url: "` + prom.URL + `"}
`, args: []string{"--listen", addr}, env: []string{
		"OTEL_METRICS_EXPORTER=prometheus", "OTEL_METRIC_EXPORT_INTERVAL=1000",
		"OTEL_EXPORTER_PROMETHEUS_HOST=127.0.0.1", "OTEL_EXPORTER_PROMETHEUS_PORT=0",
	}})
	if p.addr != addr {
		t.Fatalf("agent listens on %s, want %s", p.addr, addr)
	}
	p.waitReady(t)
	status := func() patrol.Status {
		var st struct{ Rules patrol.Status }
		_, body := p.get(t, "/status")
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("/status: %v", err)
		}
		return st.Rules
	}
	// Before any reload the query has no data: unknown (an evaluation
	// error), not firing.
	unknown := regexp.MustCompile(`gopatrol_rule_evaluation_errors(_total)?\{[^}]*gopatrol_rule_name="agent-reloaded"[^}]*\} [1-9]`)
	waitFor(t, 30*time.Second, "the rule evaluated without data", func() bool {
		_, body := p.get(t, "/metrics")
		return unknown.MatchString(body)
	})
	if st := status(); len(st.Firing) != 0 {
		t.Fatalf("firing before any reload: %+v", st.Firing)
	}

	p.cmd.Process.Signal(syscall.SIGHUP)
	firing := func() bool {
		for _, s := range status().Firing {
			if s.Rule == "agent-reloaded" && s.Value == 1 {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(time.Minute); !firing(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			_, body := p.get(t, "/metrics")
			resp, err := http.Get(prom.URL + "/api/v1/query?query=" + url.QueryEscape(`{__name__=~"gopatrol_agent.*"}`))
			var answer []byte
			if err == nil {
				answer, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<16))
				resp.Body.Close()
			}
			t.Fatalf("the promql rule did not fire on the scraped reload counter; /metrics reloads: %q; prometheus: %s %v",
				regexp.MustCompile(`(?m)^gopatrol_agent_reloads.*$`).FindAllString(body, -1), answer, err)
		}
	}
	// The rule's value is in the agent's own metrics too, which
	// Prometheus scrapes in turn.
	_, body := p.get(t, "/metrics")
	if !regexp.MustCompile(`gopatrol_rule_value(_ratio)?\{[^}]*gopatrol_rule_name="agent-reloaded"[^}]*\} 1\n`).MatchString(body) {
		t.Errorf("/metrics has no gopatrol_rule_value 1 of agent-reloaded:\n%.4000s", body)
	}
}
