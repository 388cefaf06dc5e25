package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent"
	"github.com/gopatrol/gopatrol/agent/internal/servertest"
)

// A ticket opened before a restart gets its resolving comment after it:
// the real binary escalates a broken world into a loopback Jira, is
// stopped, the world is fixed, and the agent started again on the same
// state directory comments on that same ticket, once, and opens no other.
func TestTicketResolvedAfterRestart(t *testing.T) {
	am := servertest.Alertmanager(t)
	jira := newJira(t)
	hook := newCounter(t)
	w := newRulesWorld(t)
	if err := os.WriteFile(filepath.Join(w.dir, "jira-token"), []byte("s3cret-jira-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.breakIt(t)
	o := agentOpts{config: w.config(am.URL, jira.URL, hook.URL), env: []string{"GOPATROL_TEST_HOOK_KEY=hook-key", "OTEL_METRICS_EXPORTER=none"}}
	p := startAgent(t, o)
	waitFor(t, 3*time.Minute, "one jira ticket", func() bool { is, _ := jira.state(); return len(is) >= 1 })
	stateDir := filepath.Join(w.dir, "state")
	b, err := os.ReadFile(filepath.Join(stateDir, agent.TicketsFile))
	if err != nil || !strings.Contains(string(b), "service=go-builds") || !strings.Contains(string(b), "jira:OPS") {
		t.Fatalf("%s after the ticket: %q, %v; want the group's open ticket and its target", agent.TicketsFile, b, err)
	}
	if err := p.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("first agent: %v", err)
	}

	w.fix(t)
	p = startAgent(t, o)
	waitFor(t, 2*time.Minute, "the resolving comment on OPS-1", func() bool { _, c := jira.state(); return len(c["OPS-1"]) == 1 })
	// A few more cycles: still one ticket, one comment.
	time.Sleep(time.Second)
	issues, comments := jira.state()
	if len(issues) != 1 || len(comments) != 1 || len(comments["OPS-1"]) != 1 {
		t.Errorf("%d tickets and comments %v, want the one ticket and one comment on it", len(issues), comments)
	}
	if !strings.Contains(comments["OPS-1"][0], "recovered") {
		t.Errorf("comment %q does not say the group recovered", comments["OPS-1"][0])
	}
	waitFor(t, 10*time.Second, "the ticket forgotten", func() bool {
		b, err := os.ReadFile(filepath.Join(stateDir, agent.TicketsFile))
		return err == nil && strings.TrimSpace(string(b)) == "[]"
	})
	for _, l := range p.log() {
		if strings.Contains(l, "no open ticket is known") {
			t.Errorf("the restarted agent did not know the ticket: %s", l)
		}
	}
}
