package patrol

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// dirRemedier is a real fix runner for the test's exec rules, which
// breach while a directory is missing: it runs the rule's own check
// (`test -d DIR`), creates the directory, and runs the check again.
type dirRemedier struct {
	dir   string
	mu    sync.Mutex
	calls int
}

func testDir(ctx context.Context, dir string) check.Result {
	if err := exec.CommandContext(ctx, "test", "-d", dir).Run(); err != nil {
		return check.Failf("%s is not a directory: %v", dir, err)
	}
	return check.Passf("%s is a directory", dir)
}

func (d *dirRemedier) Remediate(ctx context.Context, r Rule, fix string) (Attempt, error) {
	d.mu.Lock()
	d.calls++
	d.mu.Unlock()
	at := Attempt{Check: fix, Before: testDir(ctx, d.dir)}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return at, fmt.Errorf("fix %s: %w", fix, err)
	}
	at.Changes, at.Undo = []string{"created directory " + d.dir}, []string{"rmdir " + d.dir}
	at.After = testDir(ctx, d.dir)
	at.Held = at.After.Status == check.Pass
	return at, nil
}

func (d *dirRemedier) count() int { d.mu.Lock(); defer d.mu.Unlock(); return d.calls }

// actionWorld is a world whose exec rules breach while dir is missing.
func actionWorld(t *testing.T, rules string, rc RemediationConfig) (*world, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cache")
	rules = strings.ReplaceAll(rules, "DIR", dir)
	w := newWorld(t, rules, func(c *Config) {
		c.AllowExec = true
		c.Remediation = rc
	})
	return w, dir
}

func remediationLines(t *testing.T, w *world) []AuditEntry {
	t.Helper()
	all, err := ReadAudit(AuditPath(w.state))
	if err != nil {
		t.Fatal(err)
	}
	var out []AuditEntry
	for _, e := range all {
		if e.Kind == AuditRemediation {
			out = append(out, e)
		}
	}
	return out
}

func TestRemediateOncePerEpisodeAudited(t *testing.T) {
	rem := &dirRemedier{}
	w, dir := actionWorld(t, "- name: cache-dir\n  type: exec\n  target: test -d DIR\n  remediate: gocache.writable\n",
		RemediationConfig{Enabled: true, Remedier: rem})
	rem.dir = dir

	c := w.step() // missing: fires, the fix creates it and holds
	if len(c.Actions) != 1 || c.Actions[0].Outcome != OutcomeHeld {
		t.Fatalf("first firing's actions = %+v, want one held repair", c.Actions)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("the fix did not create %s: %v", dir, err)
	}
	if r := c.Actions[0].RepairRate; r == nil || *r != 1 {
		t.Errorf("repair rate = %v, want 1", r)
	}
	// Broken again inside the same episode (before 3 healthy evaluations
	// end it): no second attempt.
	w.step()
	os.Remove(dir)
	for range 2 {
		if c := w.step(); len(c.Actions) != 0 {
			t.Fatalf("a second action in one episode: %+v", c.Actions)
		}
	}
	if rem.count() != 1 {
		t.Fatalf("remedier called %d times in one episode", rem.count())
	}
	// The episode ends (3 healthy), then a new one: a new attempt, which
	// fails because a file now stands where the directory goes.
	os.MkdirAll(dir, 0o755)
	for range 3 {
		w.step()
	}
	os.Remove(dir)
	if err := os.WriteFile(dir, []byte("not a dir"), 0o644); err != nil {
		t.Fatal(err)
	}
	c = w.step()
	if len(c.Actions) != 1 || c.Actions[0].Outcome != OutcomeError || !strings.Contains(c.Actions[0].Reason, dir) {
		t.Fatalf("second episode's actions = %+v, want one failed attempt naming %s", c.Actions, dir)
	}
	if r := c.Actions[0].RepairRate; r == nil || *r != 0.5 {
		t.Errorf("repair rate after one held and one failed = %v, want 0.5", r)
	}
	lines := remediationLines(t, w)
	if len(lines) != 2 {
		t.Fatalf("audit has %d remediation lines, want 2: %+v", len(lines), lines)
	}
	first := lines[0]
	if first.Rule != "cache-dir" || first.Action != ActionRemediate || first.Target != "gocache.writable" ||
		first.Outcome != OutcomeHeld || first.Before == nil || first.Before.Status != string(check.Fail) ||
		first.After == nil || first.After.Status != string(check.Pass) || len(first.Changes) != 1 || len(first.Undo) != 1 {
		t.Errorf("first audit line lacks before/after or changes: %+v", first)
	}
	if lines[1].Outcome != OutcomeError || !strings.Contains(lines[1].Detail, "not a directory") {
		t.Errorf("second audit line = %+v", lines[1])
	}
	// The rate survives a restart.
	if st, err := LoadState(w.state); err != nil || st.Rules["cache-dir"].Repairs != (RepairCount{Attempts: 2, Held: 1}) {
		t.Errorf("persisted repairs = %+v (%v)", st.Rules["cache-dir"], err)
	}
}

func TestActionsSkippedOutsideActiveStageAndOptIn(t *testing.T) {
	// A rule name inside node-1's 5% canary, so the canary rule is live.
	var in string
	for i := 0; in == ""; i++ {
		if n := fmt.Sprint("c", i); InCanary("node-1", n, 5) {
			in = n
		}
	}
	rules := fmt.Sprintf(`
- name: sh
  type: exec
  target: test -d DIR
  stage: shadow
  remediate: gocache.writable
- name: %s
  type: exec
  target: test -d DIR
  stage: canary
  remediate: gocache.writable
`, in)
	tests := []struct {
		name  string
		rules string
		rc    RemediationConfig
		want  map[string]string // rule → reason substring
	}{
		{"shadow and canary", rules, RemediationConfig{Enabled: true},
			map[string]string{"sh": "shadow stage", in: "canary stage"}},
		{"node not opted in", "- name: act\n  type: exec\n  target: test -d DIR\n  remediate: gocache.writable\n",
			RemediationConfig{Enabled: false}, map[string]string{"act": "not enabled on this node"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rem := &dirRemedier{}
			tt.rc.Remedier = rem
			w, dir := actionWorld(t, tt.rules, tt.rc)
			rem.dir = dir
			for range 3 {
				w.step()
			}
			if rem.count() != 0 {
				t.Fatalf("remedier ran %d times", rem.count())
			}
			if _, err := os.Stat(dir); err == nil {
				t.Fatalf("%s was created", dir)
			}
			lines := remediationLines(t, w)
			if len(lines) != len(tt.want) {
				t.Fatalf("audit lines = %+v, want one per rule of %v", lines, tt.want)
			}
			for _, l := range lines {
				if l.Outcome != OutcomeSkipped || !strings.Contains(l.Detail, tt.want[l.Rule]) {
					t.Errorf("audit line %+v, want skipped with %q", l, tt.want[l.Rule])
				}
			}
		})
	}
}

func TestActionsRateLimited(t *testing.T) {
	rem := &dirRemedier{}
	w, dir := actionWorld(t, `
- name: a
  type: exec
  target: test -d DIR
  remediate: gocache.writable
- name: b
  type: exec
  target: test -d DIR/b
  remediate: gocache.writable
`, RemediationConfig{Enabled: true, MaxPerHour: 1, Remedier: rem})
	rem.dir = dir
	c := w.step()
	var outcomes []string
	for _, a := range c.Actions {
		outcomes = append(outcomes, a.Rule+"="+a.Outcome)
	}
	if got := strings.Join(outcomes, " "); got != "a=held b=rate_limited" {
		t.Fatalf("outcomes = %q, want a held and b rate-limited", got)
	}
	if rem.count() != 1 {
		t.Errorf("remedier ran %d times under a limit of 1", rem.count())
	}
}

// argoWebhook is a loopback server shaped like an Argo Events webhook
// event source: POST on its endpoint only, JSON body, "success" on 200.
type argoWebhook struct {
	mu       sync.Mutex
	payloads []WebhookPayload
	rawQuery []string
	status   int
}

func (a *argoWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/gopatrol" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "unsupported method", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		http.Error(w, "want application/json, got "+ct, http.StatusBadRequest)
		return
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	var p WebhookPayload
	if err := dec.Decode(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.payloads = append(a.payloads, p)
	a.rawQuery = append(a.rawQuery, r.URL.RawQuery)
	status := a.status
	a.mu.Unlock()
	if status != http.StatusOK {
		http.Error(w, "event bus unavailable", status)
		return
	}
	io.WriteString(w, "success")
}

func TestWebhookAction(t *testing.T) {
	hook := &argoWebhook{status: http.StatusOK}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	w, dir := actionWorld(t, fmt.Sprintf(`
- name: scale-builders
  type: exec
  target: test -d DIR
  labels: {service: build}
  webhook: %s/gopatrol?token=s3cret
`, srv.URL), RemediationConfig{Enabled: true})
	c := w.step()
	if len(c.Actions) != 1 || c.Actions[0].Outcome != OutcomeDelivered {
		t.Fatalf("actions = %+v, want one delivered webhook", c.Actions)
	}
	hook.mu.Lock()
	p, q := hook.payloads[0], hook.rawQuery[0]
	hook.mu.Unlock()
	if p.Source != "gopatrol" || p.Kind != "fire" || p.Rule != "scale-builders" || p.Stage != StageActive ||
		p.Value != 1 || p.Threshold != "ge(1)" || p.Labels["service"] != "build" || p.Host != "node-1" || p.Since.IsZero() {
		t.Errorf("payload = %+v", p)
	}
	if q != "token=s3cret" {
		t.Errorf("the webhook's query was not sent as written: %q", q)
	}
	lines := remediationLines(t, w)
	if len(lines) != 1 || lines[0].Target != srv.URL+"/gopatrol" {
		t.Fatalf("audit = %+v, want the URL without its query", lines)
	}
	b, _ := os.ReadFile(AuditPath(w.state))
	if strings.Contains(string(b), "s3cret") {
		t.Errorf("the webhook token reached the audit log")
	}
	// A new episode while the event bus fails: the error names the status.
	os.MkdirAll(dir, 0o755)
	for range 3 {
		w.step()
	}
	os.Remove(dir)
	hook.mu.Lock()
	hook.status = http.StatusServiceUnavailable
	hook.mu.Unlock()
	c = w.step()
	if len(c.Actions) != 1 || c.Actions[0].Outcome != OutcomeError || !strings.Contains(c.Actions[0].Reason, "503") {
		t.Fatalf("actions = %+v, want an error naming 503", c.Actions)
	}
}

func TestActionFieldsValidated(t *testing.T) {
	tests := []struct {
		rule, field, want string
	}{
		{"  remediate: Not A Check\n", "remediate", "the ID of the doctor check"},
		{"  webhook: ftp://host/x\n", "webhook", "absolute http or https URL"},
		{"  webhook: /relative\n", "webhook", "absolute http or https URL"},
		{"  webhook: http://user:pw@host/x\n", "webhook", "no credentials"},
	}
	for _, tt := range tests {
		_, probs := ParseRules("r.yaml", []byte("- name: x\n  type: exec\n  target: \"true\"\n"+tt.rule))
		if len(probs) != 1 || probs[0].Field != tt.field || !strings.Contains(probs[0].Detail, tt.want) {
			t.Errorf("%q: problems = %v, want one on %s saying %q", tt.rule, probs, tt.field, tt.want)
		}
		if strings.Contains(probs.Error(), "pw@") {
			t.Errorf("the problem repeats the URL's password: %v", probs)
		}
	}
	// A check the agent does not have refuses the set.
	dir := t.TempDir()
	writeRules(t, dir, "r.yaml", "- name: x\n  type: exec\n  target: \"true\"\n  remediate: gocache.nosuch\n")
	e, err := New(Config{AllowExec: true, Checks: Doctor{Checks: []check.Check{{ID: "gocache.writable"}}}, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Load(dir); err == nil || !strings.Contains(err.Error(), `"gocache.nosuch" is not a check`) {
		t.Errorf("load = %v, want the unknown check named", err)
	}
}
