package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/gopatrol/gopatrol/agent"
	"github.com/gopatrol/gopatrol/agent/notify"
	"github.com/gopatrol/gopatrol/agent/patrol"
	"github.com/gopatrol/gopatrol/bpf/bpftest"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// stateWorld is a rules agent with its state directory where the test
// says. Whole, it has its sensors, the probe plugin and the relay in
// front of the webhook; otherwise none of them.
func stateWorld(t *testing.T, state string, whole bool) *world {
	t.Helper()
	tl := shortRun
	w := newWorld(t, tl)
	w.state = state
	cfg := w.config(tl)
	if !whole {
		cfg = strings.Replace(cfg, "plugins:\n  dir: "+bins.plugins+"\n  probe_deadline: 5s\n", "", 1)
		cfg = strings.Replace(cfg, w.target.addr, strings.TrimPrefix(w.hook.URL, "http://"), 1)
		cfg = strings.Replace(cfg, "sensors:\n", "sensors:\n  enabled: false\n", 1)
	}
	writeFile(t, w.cfg, cfg, 0o644)
	return w
}

func stateEnv() []string {
	return []string{"OTEL_METRICS_EXPORTER=none", "SOAK_HOOK_KEY=" + hookKey, "TESTPROBE_ATTRS_" + probeName + "=cloud.region=soak-1"}
}

// flip breaches the rule or heals it, and waits for its notification.
func (w *world) flip(t *testing.T, on bool, wantAtHook int) {
	t.Helper()
	if on {
		writeFile(t, w.flag, "", 0o644)
	} else {
		os.Remove(w.flag)
	}
	if wantAtHook > 0 {
		waitFor(t, time.Minute, fmt.Sprintf("%d notifications at the hook", wantAtHook), func() bool {
			got, _, _ := w.hook.deliveries()
			return len(got) >= wantAtHook
		})
	}
}

// checkState reads what the agent keeps in state as the next start will:
// the rule engine's state, the audit log, the outbox.
func checkState(t *testing.T, state string) (audit []patrol.AuditEntry, pending int) {
	t.Helper()
	if _, err := patrol.LoadState(state); err != nil {
		t.Errorf("rule state after the fault: %v", err)
	}
	audit, err := patrol.ReadAudit(patrol.AuditPath(state))
	if err != nil {
		t.Errorf("audit log after the fault: %v", err)
	}
	ob, err := notify.OpenOutbox(filepath.Join(state, "outbox"))
	if err != nil {
		t.Fatalf("outbox after the fault: %v", err)
	}
	p, err := ob.Pending()
	if err != nil {
		t.Errorf("outbox after the fault: %v", err)
	}
	return audit, len(p)
}

// The state directory's file system fills up: the agent says so clearly
// and keeps running, and the next start finds its rule state, audit log
// and outbox whole, and delivers what was waiting, once.
func TestStateDirFull(t *testing.T) {
	testgate.Root(t, "mount a small tmpfs")
	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "soak-state", state).CombinedOutput(); err != nil {
		testgate.Missing(t, "mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", state).Run() })
	w := stateWorld(t, state, false)
	p := startAgent(t, w.cfg, stateEnv())
	p.waitReady(t, time.Now())
	w.flip(t, true, 1)
	w.flip(t, false, 2)

	// Fill it: pages, then bytes, until the file system says no.
	filler := filepath.Join(state, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{4096, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling the tmpfs: %v", err)
				}
				break
			}
		}
	}
	f.Close()

	// Breaches and heals while full: each wants the outbox, the audit log
	// and the rule state written. A notification that cannot be queued is
	// said (an error naming the rule), not silently lost.
	full, _, _ := w.hook.deliveries()
	const flips = 6
	for i := range flips {
		w.flip(t, i%2 == 0, 0)
		time.Sleep(time.Second)
	}
	// A broken rule set wants an audit line written too: one longer than
	// a page, so that it cannot fit in what is left of the log's last page
	// and the file system takes only part of it.
	broken := filepath.Join(w.rules, "broken.yaml")
	writeFile(t, broken, "- name: half"+strings.Repeat("f", 5000)+"\n  type: exec\n  threshold: \"gt(\"\n", 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "rule reload refused", time.Minute)
	os.Remove(broken)
	line := p.waitLog(t, "no space left on device", time.Minute)
	t.Logf("the agent's word for it: %s", line)
	during, _, _ := w.hook.deliveries()
	notQueued := p.logCount("notification not queued")
	if notQueued+len(during)-len(full) != flips {
		t.Errorf("%d flips while full: %d notifications delivered and %d logged as not queued, want them to add up", flips, len(during)-len(full), notQueued)
	}
	if code, body := p.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with a full state directory: %d %s", code, body)
	}
	if err := p.stop(t, syscall.SIGTERM, time.Minute); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	audit, pending := checkState(t, state)
	t.Logf("after the full disk: %d audit lines, %d notifications pending", len(audit), pending)

	// Space again: the next start takes the state as it is.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	before, _, _ := w.hook.deliveries()
	q := startAgent(t, w.cfg, stateEnv())
	q.waitReady(t, time.Now())
	w.flip(t, true, len(before)+pending+1)
	w.flip(t, false, len(before)+pending+2)
	time.Sleep(2 * time.Second) // a duplicate would arrive meanwhile
	if err := q.stop(t, syscall.SIGTERM, time.Minute); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	for _, l := range q.log() {
		if strings.Contains(l, `"level":"ERROR"`) {
			t.Errorf("the start after the full disk logged an error: %s", l)
		}
	}
	_, seen, bad := w.hook.deliveries()
	for id, n := range seen {
		if n > 1 {
			t.Errorf("notification %s delivered %d times", id, n)
		}
	}
	if bad != 0 {
		t.Errorf("%d bad webhook requests", bad)
	}
	checkState(t, state)
}

// SIGKILL in the middle of it all: no BPF object of the agent stays in
// the kernel, its plugin does not live on as an orphan, the next start finds the state whole and is ready within
// the start budget (2 s plus the probe deadline, issue 11), and what the
// outbox held is delivered, once.
func TestSIGKILLAndRestart(t *testing.T) {
	bpftest.Require(t)
	w := stateWorld(t, filepath.Join(t.TempDir(), "state"), true)
	p := startAgent(t, w.cfg, stateEnv())
	p.waitReady(t, time.Now())
	p.waitLog(t, "sensors attached", time.Minute)
	w.flip(t, true, 1)
	ids := progIDs(t, p.cmd.Process.Pid)
	if len(ids) == 0 {
		t.Fatal("the agent holds no BPF program with its sensors attached")
	}
	// The target goes away, a notification waits in the outbox, and the
	// agent is killed.
	w.target.Down()
	w.flip(t, false, 0)
	p.waitLog(t, "notification failed, will retry", time.Minute)
	plugins := children(p.cmd.Process.Pid, probeExe())
	if len(plugins) != 1 {
		t.Errorf("plugin processes before the kill: %v, want one", plugins)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	// The plugin notices that its host is gone and exits: no orphan.
	waitFor(t, 30*time.Second, "the killed agent's plugin to exit", func() bool {
		for _, pid := range plugins {
			if syscall.Kill(pid, 0) == nil {
				if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z ") {
					return false
				}
			}
		}
		return true
	})
	waitFor(t, 30*time.Second, "the agent's BPF programs to leave the kernel", func() bool {
		for _, id := range ids {
			if prog, err := ebpf.NewProgramFromID(id); err == nil {
				prog.Close()
				return false
			}
		}
		return true
	})
	audit, pending := checkState(t, w.state)
	if pending != 1 {
		t.Errorf("%d notifications in the outbox after SIGKILL, want the 1 the target did not take", pending)
	}
	w.target.Up(t)

	start := time.Now()
	q := startAgent(t, w.cfg, stateEnv())
	ready := q.waitReady(t, start)
	budget := 2*time.Second + 5*time.Second // probe_deadline in the world's config
	t.Logf("restart to ready: %v (budget %v); %d audit lines kept", ready, budget, len(audit))
	if ready > budget {
		t.Errorf("ready %v after the restart, over the start budget %v", ready, budget)
	}
	waitFor(t, time.Minute, "the waiting notification", func() bool { got, _, _ := w.hook.deliveries(); return len(got) >= 2 })
	time.Sleep(2 * time.Second)
	got, seen, _ := w.hook.deliveries()
	if len(got) != 2 || got[1].Kind != notify.Resolved || len(seen) != 2 {
		t.Errorf("the target got %+v, want the firing before the kill and the resolved one after the restart, once each", got)
	}
	after, err := patrol.ReadAudit(patrol.AuditPath(w.state))
	if err != nil || len(after) < len(audit) {
		t.Errorf("audit log after the restart: %d lines (%v), had %d", len(after), err, len(audit))
	}
	if err := q.stop(t, syscall.SIGTERM, time.Minute); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// progIDs are the BPF programs the process holds open, from its fdinfo.
func progIDs(t *testing.T, pid int) []ebpf.ProgramID {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fdinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	var ids []ebpf.ProgramID
	for _, fd := range fds {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			var id uint32
			if _, err := fmt.Sscanf(l, "prog_id:\t%d", &id); err == nil {
				ids = append(ids, ebpf.ProgramID(id))
			}
		}
	}
	return ids
}

// The scheduler's loop stalls (held in Options.BeforeSchedulerTick, as a
// deadlock would hold it): /healthz turns 503 naming it within three of
// its periods, and 200 again once it runs.
func TestSchedulerStallTurnsHealthz503(t *testing.T) {
	const every = time.Second
	cfg := agent.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Sensors.Enabled = false
	cfg.Checks.Every = every
	cfg.Checks.FullAt = ""
	cfg.Checks.Skip = []string{"env.functional", "cgo.toolchain", "build.race-pprof", "build.cacheverify", "build.pie-aslr", "tls.session-reuse", "module.verify", "module.vendor"}
	cfg.StateDir = t.TempDir()
	lookup := func(k string) (string, bool) {
		if k == "OTEL_METRICS_EXPORTER" {
			return "none", true
		}
		return os.LookupEnv(k)
	}
	stall := make(chan struct{}) // closed: the loop blocks in the hook
	stalled := make(chan time.Time, 1)
	release := make(chan struct{})
	hook := func(ctx context.Context) {
		select {
		case <-stall:
		default:
			return
		}
		select {
		case stalled <- time.Now():
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, cfg, agent.Options{Stderr: io.Discard, Lookup: lookup, BeforeSchedulerTick: hook,
			Listening: func(a string) { addr <- a }})
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("Run returned before listening: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("never listening")
	}
	healthz := func() (int, string) {
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(base + "/healthz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return resp.StatusCode, string(b)
	}
	waitFor(t, time.Minute, "/healthz 200", func() bool { code, _ := healthz(); return code == http.StatusOK })
	time.Sleep(2 * every)
	if code, body := healthz(); code != http.StatusOK {
		t.Fatalf("/healthz of a running scheduler: %d %s", code, body)
	}
	close(stall)
	var from time.Time
	select {
	case from = <-stalled:
	case <-time.After(10 * every):
		t.Fatal("the scheduler's loop never reached the hook")
	}
	// From the stall to the request that got the 503, sent: the request's
	// own latency (long on a loaded machine) is not the agent's.
	var body string
	var took time.Duration
	waitFor(t, 10*every, "/healthz 503", func() bool {
		var code int
		sent := time.Now()
		code, body = healthz()
		took = sent.Sub(from)
		return code == http.StatusServiceUnavailable
	})
	t.Logf("stall to 503: %v (%s)", took, strings.TrimSpace(body))
	// The last tick was at most one period before the loop entered the
	// hook, 503 comes three periods after it; 300 ms for the polling.
	if took > 3*every+300*time.Millisecond {
		t.Errorf("503 came %v after the stall, want within three intervals (%v)", took, 3*every)
	}
	if !strings.Contains(body, "scheduler") || strings.Contains(body, "export") {
		t.Errorf("/healthz body %q, want it to name the scheduler only", body)
	}
	close(release)
	waitFor(t, 10*every, "/healthz 200 after the stall", func() bool { code, _ := healthz(); return code == http.StatusOK })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after cancel")
	}
}
