package agent

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/inventory"
	"github.com/gopatrol/gopatrol/agent/patrol"
	"github.com/gopatrol/gopatrol/bpf"
)

// A go command of the agent's own checks, or of a doctor elsewhere (its
// scratch GOTMPDIR), is not an environment builds use: recording those
// would patrol the patrols, each a new environment.
func TestOwnGoCommandsAreNotEnvironments(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "goroot")
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	b, _ := os.ReadFile(sleep)
	goBin := filepath.Join(root, "bin", "go")
	if err := os.WriteFile(goBin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(env ...string) int {
		cmd := exec.Command(goBin, "30")
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		// Until the exec is done: /proc/PID/exe names the new program a
		// moment before its environment is in place (the agent reads on
		// sched_process_exec, after both).
		proc := "/proc/" + strconv.Itoa(cmd.Process.Pid)
		for i := 0; i < 200; i++ {
			l, _ := os.Readlink(proc + "/exe")
			environ, _ := os.ReadFile(proc + "/environ")
			if l == goBin && len(environ) > 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		return cmd.Process.Pid
	}
	cases := []struct {
		name   string
		ppid   int
		env    []string
		record bool
	}{
		{"a build", 1, []string{"GOFLAGS=-mod=mod"}, true},
		{"the agent's own check", os.Getpid(), []string{"GOFLAGS=-mod=mod"}, false},
		{"a doctor's go command elsewhere", 1, []string{"GOFLAGS=", "GOTMPDIR=/tmp/gopatrol-gotmp-123456"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ep := &envPatrol{inv: inventory.New(inventory.Config{}), wake: make(chan struct{}, 1), flush: make(chan struct{}, 1),
				log: slog.New(slog.DiscardHandler), state: inventory.StatePath(dir), audit: &patrol.Audit{Path: patrol.AuditPath(dir)}}
			pid := run(tc.env...)
			ep.exec(&bpf.EnvEvent{Header: bpf.Header{PID: uint32(pid)}, PPID: uint32(tc.ppid), UID: uint32(os.Getuid())})
			if got := ep.inv.Len() == 1; got != tc.record {
				t.Errorf("recorded %v, want %v (missed %d)", got, tc.record, ep.missed.Load())
			}
		})
	}
}

// An escalation ticket carries the environments' changes of the last
// day: which, where, which fields; never a variable's value.
func TestTicketCarriesEnvironmentChanges(t *testing.T) {
	ep := &envPatrol{inv: inventory.New(inventory.Config{})}
	a := &agent{envs: ep}
	if s := a.envChanges(""); s != "" {
		t.Errorf("no changes, yet the ticket says %q", s)
	}
	e := inventory.Env{Go: "/usr/local/go/bin/go", Version: "go1.26.8", UID: 1000, Vars: map[string]string{"GOFLAGS": "-tags=very-private-value"}}
	first, _ := ep.inv.Observe(e, time.Now().Add(-30*time.Hour), 10)
	e.Vars = map[string]string{"GOFLAGS": "-tags=other-private-value"}
	second, _ := ep.inv.Observe(e, time.Now(), 11)
	s := a.envChanges("")
	if strings.Contains(s, first+" appeared") || !strings.Contains(s, second+" changed") || !strings.Contains(s, "replacing "+first) ||
		!strings.Contains(s, "changed: GOFLAGS") || strings.Contains(s, "private-value") {
		t.Errorf("ticket section (the 30-hour-old appearance out, the change in, no values):\n%s", s)
	}
}

// The inventory feeds the rule engine: a failing patrol fires a check
// rule for that environment only (the agent's own checks pass), with its
// identity as annotations; once the environment disappears from the
// inventory, the writer ends its series as gone, not healthy.
func TestEnvironmentResultsFeedRules(t *testing.T) {
	state := t.TempDir()
	ep := &envPatrol{inv: inventory.New(inventory.Config{}), log: slog.New(slog.DiscardHandler),
		audit: &patrol.Audit{Path: patrol.AuditPath(state)}, state: inventory.StatePath(state),
		checks: func() []check.Check {
			return []check.Check{{ID: "gocache.writable"}, {ID: "env.config"}}
		}}
	env := inventory.Env{Go: "/opt/go/bin/go", Version: "go1.26.8", UID: 1001, Container: inventory.Container{MountNS: 4026532000},
		Vars: map[string]string{"GOCACHE": "/cache", "GOPROXY": "https://user:secret-value@proxy.internal"}}
	id, _ := ep.inv.Observe(env, time.Now().Add(-48*time.Hour), 10)
	ep.inv.SetPatrol(id, inventory.Result{At: time.Now(), Outcome: inventory.OutcomeFail, Summary: map[check.Status]int{check.Fail: 1, check.Pass: 1},
		Problems: []inventory.Problem{{ID: "gocache.writable", Status: check.Fail, Summary: "GOCACHE /cache is not writable by uid 1001"}}})

	rules := t.TempDir()
	os.WriteFile(filepath.Join(rules, "r.yaml"), []byte("- {name: gocache, type: check, target: 'gocache.*', notify: [alertmanager]}\n- {name: env, type: check, target: env.config}\n"), 0o644)
	var events []patrol.Event
	pass := func(context.Context, *check.Env) check.Result { return check.Result{Status: check.Pass} }
	eng, err := patrol.New(patrol.Config{StateDir: state, Environments: ep, Events: func(ev patrol.Event) { events = append(events, ev) },
		Checks: patrol.Doctor{Env: &check.Env{}, Checks: []check.Check{{ID: "gocache.writable", Run: pass}, {ID: "env.config", Run: pass}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(rules); err != nil {
		t.Fatal(err)
	}
	ep.rules.Store(eng)
	if _, err := eng.EvaluateAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Kind != patrol.EventFire || events[0].Labels[patrol.LabelEnvironment] != id ||
		events[0].Annotations["user.id"] != "1001" || events[0].Annotations["mount_ns"] != "4026532000" {
		t.Fatalf("events %+v: want one firing of gocache for %s with its identity", events, id)
	}
	for k, v := range events[0].Annotations {
		if strings.Contains(v, "secret-value") || strings.Contains(v, "/cache") {
			t.Errorf("annotation %s=%q holds a variable's value", k, v)
		}
	}

	events = nil
	ep.changed(ep.inv.Sweep(time.Now(), 24*time.Hour))
	ep.write()
	if len(events) != 1 || events[0].Kind != patrol.EventResolve || !strings.Contains(events[0].Message, "left the inventory (disappeared)") {
		t.Fatalf("events %+v: want the firing resolved as gone", events)
	}
	if st := eng.Status(); len(st.Firing) != 0 {
		t.Errorf("still firing: %+v", st.Firing)
	}
}
