package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gopatrol/gopatrol/agent"
	"github.com/gopatrol/gopatrol/agent/internal/servertest"
	"github.com/gopatrol/gopatrol/agent/patrol"
)

// jiraServer is a loopback Jira (REST API v2): it opens issues OPS-1,
// OPS-2, ... and keeps their descriptions and comments.
type jiraServer struct {
	*httptest.Server
	mu       sync.Mutex
	issues   []string            // descriptions, by issue number - 1
	comments map[string][]string // by issue key
	auth     []string
}

func newJira(t *testing.T) *jiraServer {
	j := &jiraServer{comments: map[string][]string{}}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		j.mu.Lock()
		defer j.mu.Unlock()
		j.auth = append(j.auth, r.Header.Get("Authorization"))
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/rest/api/2/issue":
			var in struct {
				Fields struct {
					Project     struct{ Key string }
					Description string
				}
			}
			if err := json.Unmarshal(body, &in); err != nil || in.Fields.Project.Key != "OPS" {
				http.Error(w, `{"errorMessages":["bad issue"]}`, http.StatusBadRequest)
				return
			}
			j.issues = append(j.issues, in.Fields.Description)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id":"%d","key":"OPS-%d","self":"x"}`, 10000+len(j.issues), len(j.issues))
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/rest/api/2/issue/") && strings.HasSuffix(r.URL.Path, "/comment"):
			key := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/rest/api/2/issue/"), "/comment")
			var in struct{ Body string }
			json.Unmarshal(body, &in)
			j.comments[key] = append(j.comments[key], in.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"id":"1"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(j.Close)
	return j
}

func (j *jiraServer) state() (issues []string, comments map[string][]string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	c := map[string][]string{}
	for k, v := range j.comments {
		c[k] = append([]string(nil), v...)
	}
	return append([]string(nil), j.issues...), c
}

// counter is a loopback webhook that counts what it receives.
type counter struct {
	*httptest.Server
	mu sync.Mutex
	n  int
}

func newCounter(t *testing.T) *counter {
	c := &counter{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct{ State string }
}

func amAlerts(t *testing.T, base, rule string) []amAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts?filter=" + url.QueryEscape(`rule="`+rule+`"`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []amAlert
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("alertmanager alerts: %v", err)
	}
	return out
}

// rulesWorld is a GOCACHE directory and an exec rule that breaches when it
// is not a directory (what a botched provisioning leaves behind).
type rulesWorld struct {
	dir, gocache, rules string
}

func newRulesWorld(t *testing.T) rulesWorld {
	w := rulesWorld{dir: t.TempDir()}
	w.gocache = filepath.Join(w.dir, "gocache")
	w.rules = filepath.Join(w.dir, "rules")
	script := filepath.Join(w.dir, "gocache-usable.sh")
	body := "#!/bin/sh\nif [ -d " + w.gocache + " ]; then echo usable; exit 0; fi\necho \"GOCACHE " + w.gocache + " is not a directory\"\nexit 1\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(w.rules, 0o755); err != nil {
		t.Fatal(err)
	}
	rules := `
- name: gocache-usable
  type: exec
  target: ` + script + `
  threshold: "ge(1)"
  every: 200ms
  weight: 10000
  labels: {service: go-builds}
  notify: ["alertmanager"]
- name: gocache-usable-canary
  type: exec
  target: ` + script + `
  threshold: "ge(1)"
  every: 200ms
  stage: canary
  canary_percent: 100
  weight: 1
  labels: {service: go-builds}
  notify: ["alertmanager"]
- name: gocache-usable-shadow
  type: exec
  target: ` + script + `
  threshold: "ge(1)"
  every: 200ms
  stage: shadow
  weight: 10000
  labels: {service: shadowed}
  notify: ["webhook:shadow"]
`
	if err := os.WriteFile(filepath.Join(w.rules, "gocache.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w rulesWorld) breakIt(t *testing.T) {
	os.RemoveAll(w.gocache)
	if err := os.WriteFile(w.gocache, []byte("not a dir"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (w rulesWorld) fix(t *testing.T) {
	os.Remove(w.gocache)
	if err := os.Mkdir(w.gocache, 0o755); err != nil {
		t.Fatal(err)
	}
}

func (w rulesWorld) config(am, jira, hook string) string {
	return `
state_dir: ` + filepath.Join(w.dir, "state") + `
checks:
  every: 1h
  full_at: ""
  skip: [build.race-pprof, build.cacheverify, env.functional, cgo.toolchain, build.pie-aslr, tls.session-reuse, module.verify, module.vendor]
sensors:
  enabled: false
rules:
  dir: ` + w.rules + `
  allow_exec: true
  tick: 200ms
  resolve_after: 2
  escalate_after: 2
  tickets: ["jira:OPS"]
  silence_canary: true
notify:
  alertmanager: {url: "` + am + `"}
  jira: {url: "` + jira + `", token: {file: ` + filepath.Join(w.dir, "jira-token") + `}}
  webhooks:
    shadow: {url: "` + hook + `", secret: {env: GOPATROL_TEST_HOOK_KEY}}
  retry: {initial: 100ms, max: 1s, poll: 200ms}
`
}

func auditKinds(t *testing.T, stateDir string) map[string][]patrol.AuditEntry {
	t.Helper()
	entries, err := patrol.ReadAudit(patrol.AuditPath(stateDir))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]patrol.AuditEntry{}
	for _, e := range entries {
		out[e.Kind] = append(out[e.Kind], e)
	}
	return out
}

// startRulesAgent starts a real Alertmanager, a loopback Jira and webhook,
// and the agent on a rules world, broken or not.
func startRulesAgent(t *testing.T, broken bool) (*servertest.Server, *jiraServer, *counter, rulesWorld, *proc) {
	am := servertest.Alertmanager(t)
	jira := newJira(t)
	hook := newCounter(t)
	w := newRulesWorld(t)
	if err := os.WriteFile(filepath.Join(w.dir, "jira-token"), []byte("s3cret-jira-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if broken {
		w.breakIt(t)
	} else {
		w.fix(t)
	}
	p := startAgent(t, agentOpts{config: w.config(am.URL, jira.URL, hook.URL), env: []string{"GOPATROL_TEST_HOOK_KEY=hook-key", "OTEL_METRICS_EXPORTER=none"}})
	p.waitLog(t, "rules loaded", 60*time.Second)
	return am, jira, hook, w, p
}

// A rule on a broken world fires an alert in a real Alertmanager, the
// group escalates into exactly one Jira ticket with the diagnosis, and
// fixing the world resolves both; the shadow rule breaching alongside
// sends nothing; every delivery is in the audit log.
func TestRulesAlertEscalateResolve(t *testing.T) {
	am, jira, hook, w, p := startRulesAgent(t, true)

	var alert amAlert
	waitFor(t, time.Minute, "the alert in alertmanager", func() bool {
		as := amAlerts(t, am.URL, "gocache-usable")
		if len(as) == 1 {
			alert = as[0]
		}
		return len(as) == 1
	})
	if alert.Labels["service"] != "go-builds" || alert.Labels["stage"] == "canary" {
		t.Errorf("alert labels %v", alert.Labels)
	}
	waitFor(t, time.Minute, "the canary alert", func() bool { return len(amAlerts(t, am.URL, "gocache-usable-canary")) == 1 })
	if c := amAlerts(t, am.URL, "gocache-usable-canary")[0]; c.Labels["stage"] != "canary" {
		t.Errorf("canary alert labels %v, want stage=canary", c.Labels)
	}
	var silences []struct {
		ID       string
		Matchers []struct{ Name, Value string }
		Status   struct{ State string }
	}
	waitFor(t, time.Minute, "the canary's silence", func() bool {
		resp, err := http.Get(am.URL + "/api/v2/silences")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&silences)
		return len(silences) > 0
	})
	if len(silences) != 1 || silences[0].Status.State != "active" || len(silences[0].Matchers) != 2 {
		t.Errorf("silences %+v, want one active on rule and stage", silences)
	}
	waitFor(t, 3*time.Minute, "one jira ticket", func() bool { is, _ := jira.state(); return len(is) >= 1 })
	issues, _ := jira.state()
	for _, want := range []string{"Score history", "Breaching rules", "gocache-usable", "threshold ge(1)", "Diagnosis (full doctor)"} {
		if !strings.Contains(issues[0], want) {
			t.Errorf("ticket has no %q:\n%s", want, issues[0])
		}
	}
	var st struct{ Rules patrol.Status }
	_, body := p.get(t, "/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	firing := map[string]bool{}
	for _, s := range st.Rules.Firing {
		firing[s.Rule] = true
	}
	escalated := map[string]bool{}
	for _, g := range st.Rules.Groups {
		escalated[g.Group] = g.Escalated && g.Score < 70
	}
	// The shadow rule fires too (it is recorded), but only the live
	// group escalates.
	if !firing["gocache-usable"] || !firing["gocache-usable-shadow"] || !escalated["service=go-builds"] || escalated["service=shadowed"] {
		t.Errorf("/status rules: firing %v, escalated %v", firing, escalated)
	}

	w.fix(t)
	waitFor(t, time.Minute, "the alert resolved", func() bool { return len(amAlerts(t, am.URL, "gocache-usable")) == 0 })
	waitFor(t, time.Minute, "the resolving comment", func() bool { _, c := jira.state(); return len(c["OPS-1"]) == 1 })
	// Let a few more cycles pass: still one ticket, one comment, and the
	// shadow rule, which breached all along, never reached its webhook.
	time.Sleep(time.Second)
	issues, comments := jira.state()
	if len(issues) != 1 || len(comments["OPS-1"]) != 1 {
		t.Errorf("%d tickets and comments %v, want one ticket and one comment", len(issues), comments)
	}
	if n := hook.count(); n != 0 {
		t.Errorf("the shadow rule's webhook got %d requests, want none", n)
	}
	if n := len(amAlerts(t, am.URL, "gocache-usable-shadow")); n != 0 {
		t.Errorf("alertmanager has %d alerts of the shadow rule", n)
	}
	for _, l := range p.log() {
		if strings.Contains(l, "s3cret-jira-token") || strings.Contains(l, "hook-key") {
			t.Errorf("a secret in the log: %s", l)
		}
	}
	audit := auditKinds(t, filepath.Join(w.dir, "state"))
	var notes, tickets []string
	for _, e := range audit[patrol.AuditNotification] {
		if e.Rule == "gocache-usable" {
			notes = append(notes, e.Rule+" "+e.Target+" "+e.Detail)
		}
	}
	for _, e := range audit[patrol.AuditTicket] {
		tickets = append(tickets, e.Target+" "+e.ID+" "+e.Detail)
	}
	if strings.Join(notes, "|") != "gocache-usable alertmanager firing|gocache-usable alertmanager resolved" {
		t.Errorf("notification audit lines %q", notes)
	}
	if strings.Join(tickets, "|") != "jira:OPS OPS-1 firing|jira:OPS OPS-1 resolved" {
		t.Errorf("ticket audit lines %q", tickets)
	}
	if sl := audit[patrol.AuditSilence]; len(sl) != 1 || sl[0].Rule != "gocache-usable-canary" || len(silences) != 1 || sl[0].ID != silences[0].ID {
		t.Errorf("silence audit lines %+v, want one with the silence's ID", sl)
	}
}

// A broken rules file on SIGHUP keeps the rules in force, is counted,
// and is written to the audit log; a good one is taken.
func TestSIGHUPBrokenRulesKeepsOld(t *testing.T) {
	am, _, _, w, p := startRulesAgent(t, false)
	broken := filepath.Join(w.rules, "broken.yaml")
	if err := os.WriteFile(broken, []byte("- name: half\n  type: exec\n  threshold: \"gt(\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	line := p.waitLog(t, "rule reload refused", 30*time.Second)
	if !strings.Contains(line, "broken.yaml") || !strings.Contains(line, "half") {
		t.Errorf("refusal does not name the file and rule: %s", line)
	}
	var st struct {
		Reloads map[string]int
		Rules   struct{ Rules int }
	}
	_, body := p.get(t, "/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Reloads["rules_failed"] != 1 || st.Rules.Rules != 3 {
		t.Errorf("reloads %v, %d rules in force; want one rules_failed and the 3 old rules", st.Reloads, st.Rules.Rules)
	}
	audit := auditKinds(t, filepath.Join(w.dir, "state"))
	if len(audit[patrol.AuditLoad]) != 1 || len(audit[patrol.AuditLoadFailed]) != 1 || !strings.Contains(audit[patrol.AuditLoadFailed][0].Error, "half") {
		t.Errorf("audit: %d load and %d load_failed lines (%+v), want 1 and 1 naming the rule", len(audit[patrol.AuditLoad]), len(audit[patrol.AuditLoadFailed]), audit[patrol.AuditLoadFailed])
	}
	// The rules in force still run: breaking the world fires.
	w.breakIt(t)
	waitFor(t, time.Minute, "the alert of the old rule set", func() bool { return len(amAlerts(t, am.URL, "gocache-usable")) == 1 })
	// A fixed file is taken as a new set.
	os.Remove(broken)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "rules reloaded", 30*time.Second)
	if audit := auditKinds(t, filepath.Join(w.dir, "state")); len(audit[patrol.AuditLoad]) != 2 {
		t.Errorf("%d load lines after a good reload, want 2", len(audit[patrol.AuditLoad]))
	}
}

// A bad rule set refuses the start with exit 2, naming the file.
func TestBadRulesExit2(t *testing.T) {
	w := newRulesWorld(t)
	if err := os.WriteFile(filepath.Join(w.rules, "bad.yaml"), []byte("- name: x\n  type: nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(w.dir, "agent.yaml")
	body := "state_dir: " + filepath.Join(w.dir, "state") + "\nsensors: {enabled: false}\nchecks: {full_at: \"\"}\nrules: {dir: " + w.rules + "}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, config, want string }{
		{"bad rule file", body, "bad.yaml"},
		{"exec not allowed", strings.Replace(body, "bad.yaml", "", 1), "rules.dir"},
		{"relative dir", "rules: {dir: rules}\n", "rules.dir"},
		{"token file missing", "notify: {jira: {url: \"http://127.0.0.1:1\", token: {file: /nonexistent/token}}}\n", "notify.jira.token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "exec not allowed" {
				os.Remove(filepath.Join(w.rules, "bad.yaml"))
			}
			if err := os.WriteFile(cfg, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "agent", "--config", cfg, "--listen", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), "OTEL_METRICS_EXPORTER=none")
			b, _ := cmd.CombinedOutput()
			out := string(b)
			if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(out, tc.want) || !strings.Contains(out, cfg) {
				t.Errorf("exit %d, want 2 with %q and the config file named:\n%s", code, tc.want, out)
			}
		})
	}
}

// In process with a TracerProvider: every rule cycle is a span, and the
// escalation ticket names the trace of the cycle that escalated. A metric
// rule reads the agent's own instruments.
func TestRuleCycleSpanInTicket(t *testing.T) {
	jira := newJira(t)
	w := newRulesWorld(t)
	if err := os.WriteFile(filepath.Join(w.dir, "jira-token"), []byte("token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.breakIt(t)
	// A metric rule over the agent's own instruments: the doctor's
	// go.binary check passing, as gopatrol.check.result records it.
	metricRule := `- name: go-binary-passes
  type: metric
  query: 'gopatrol.check.result{gopatrol.check.id="go.binary",gopatrol.check.status="pass"}'
  threshold: "eq(1)"
  every: 200ms
  weight: 0
  labels: {service: self}
`
	if err := os.WriteFile(filepath.Join(w.rules, "self.yaml"), []byte(metricRule), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(w.dir, "agent.yaml")
	body := w.config("http://127.0.0.1:1", jira.URL, "http://127.0.0.1:1")
	body = strings.Replace(body, "escalate_after: 2", "escalate_after: 1", 1)
	if err := os.WriteFile(cfgFile, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOPATROL_TEST_HOOK_KEY", "k")
	cfg, err := agent.Load(cfgFile, func(c *agent.Config) { c.Listen = "127.0.0.1:0" })
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	// An exporter, so that the SDK (and its reader for metric rules) is
	// real; its output is discarded with the logs.
	env := map[string]string{"OTEL_METRICS_EXPORTER": "console"}
	addr := make(chan string, 1)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, cfg, agent.Options{Stderr: io.Discard, Lookup: lookup, TracerProvider: tp,
			Listening: func(a string) { addr <- a }})
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-time.After(time.Minute):
		t.Fatal("never listening")
	}
	waitFor(t, 2*time.Minute, "the metric rule firing", func() bool {
		resp, err := http.Get(base + "/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st struct{ Rules patrol.Status }
		json.NewDecoder(resp.Body).Decode(&st)
		for _, s := range st.Rules.Firing {
			if s.Rule == "go-binary-passes" && s.Value == 1 {
				return true
			}
		}
		return false
	})
	waitFor(t, 2*time.Minute, "the ticket", func() bool { is, _ := jira.state(); return len(is) == 1 })
	issues, _ := jira.state()
	traces := map[string]bool{}
	for _, s := range spans.Ended() {
		if s.Name() == "patrol cycle" {
			traces[s.SpanContext().TraceID().String()] = true
		}
	}
	if len(traces) == 0 {
		t.Fatal("no patrol cycle span ended")
	}
	found := false
	for id := range traces {
		found = found || strings.Contains(issues[0], "Trace of the patrol cycle: "+id)
	}
	if !found {
		t.Errorf("the ticket names no trace of the %d patrol cycles:\n%s", len(traces), issues[0])
	}
}
