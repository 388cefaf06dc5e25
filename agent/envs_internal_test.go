package agent

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
			ep.exec(&bpf.ExecEvent{Header: bpf.Header{PID: uint32(pid)}, PPID: uint32(tc.ppid), UID: uint32(os.Getuid()), Filename: goBin})
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
