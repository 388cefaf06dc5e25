package agent_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/patrol"
)

// The real agent with remediation on: an active rule that fires POSTs
// its firing to a loopback webhook once per episode, a shadow rule
// breaching alongside posts nothing, and both decisions are audited.
func TestAgentWebhookAction(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if r.Method != http.MethodPost || r.URL.Path != "/gopatrol" || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, body)
		mu.Unlock()
		io.WriteString(w, "success")
	}))
	defer srv.Close()
	w := newRulesWorld(t)
	w.breakIt(t)
	rules := `
- name: gocache-scale
  type: exec
  target: test -d ` + w.gocache + `
  every: 200ms
  webhook: ` + srv.URL + `/gopatrol
- name: gocache-scale-shadow
  type: exec
  target: test -d ` + w.gocache + `
  every: 200ms
  stage: shadow
  webhook: ` + srv.URL + `/gopatrol
`
	if err := os.WriteFile(filepath.Join(w.rules, "gocache.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(w.dir, "state")
	cfg := `
state_dir: ` + state + `
checks: {every: 1h, full_at: "", skip: [build.race-pprof, build.cacheverify, env.functional, cgo.toolchain, build.pie-aslr, tls.session-reuse, module.verify, module.vendor]}
sensors: {enabled: false}
rules: {dir: ` + w.rules + `, allow_exec: true, tick: 200ms, resolve_after: 2}
remediation: {enabled: true, max_per_hour: 10}
`
	p := startAgent(t, agentOpts{config: cfg, env: []string{"OTEL_METRICS_EXPORTER=none"}})
	defer p.stop(t, syscall.SIGTERM, 30*time.Second)
	p.waitLog(t, "rules loaded", 60*time.Second)
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no webhook POST within 60s; agent log:\n%s", strings.Join(p.log(), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // more cycles of the same episode
	mu.Lock()
	if len(got) != 1 || got[0]["rule"] != "gocache-scale" || got[0]["stage"] != "active" {
		t.Errorf("webhook got %v, want one firing of gocache-scale", got)
	}
	mu.Unlock()
	var outcomes []string
	for _, e := range auditKinds(t, state)[patrol.AuditRemediation] {
		outcomes = append(outcomes, e.Rule+"="+e.Outcome)
	}
	slices.Sort(outcomes)
	if want := "gocache-scale-shadow=skipped gocache-scale=delivered"; strings.Join(outcomes, " ") != want {
		t.Errorf("audited %v, want %s", outcomes, want)
	}
}
