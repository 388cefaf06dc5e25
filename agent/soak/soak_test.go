package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/notify"
	"github.com/gopatrol/gopatrol/agent/patrol"
	"github.com/gopatrol/gopatrol/bpf/bpftest"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

// timeline is one soak run's shape: when each fault starts and how long
// it lasts, from the agent's start.
type timeline struct {
	total  time.Duration // from ready to SIGTERM
	warmup time.Duration // RSS is compared with the sample here
	export time.Duration // OTEL_METRIC_EXPORT_INTERVAL
	// timeout is OTEL_EXPORTER_OTLP_TIMEOUT: an export to a dead
	// collector gives up within it.
	timeout         time.Duration
	collectorDownAt time.Duration
	collectorDown   time.Duration
	targetDownAt    time.Duration
	targetDown      time.Duration
	killEvery       time.Duration // the plugin's SIGKILL
	hupEvery        time.Duration // a broken config or rule set
	toggleEvery     time.Duration // the rule's breach flips
	ruleEvery       time.Duration // the rule's own period
	checksEvery     time.Duration
	builds          int
	buildWorkers    int
	opens           int
	opensAt         time.Duration
}

// shortRun is the soak of `go test` and `make test`: every fault, in
// seconds.
var shortRun = timeline{
	total: 36 * time.Second, warmup: 15 * time.Second, export: time.Second, timeout: 500 * time.Millisecond,
	collectorDownAt: 8 * time.Second, collectorDown: 7 * time.Second,
	targetDownAt: 17 * time.Second, targetDown: 7 * time.Second,
	killEvery: 6 * time.Second, hupEvery: 5 * time.Second, toggleEvery: 2 * time.Second,
	ruleEvery: 200 * time.Millisecond, checksEvery: 10 * time.Second,
	builds: 15, buildWorkers: 1, opens: 100_000, opensAt: 4 * time.Second,
}

// fullRun is `make soak`'s (GOPATROL_SOAK=full): the durations,
// 11 minutes of faults at once.
var fullRun = timeline{
	total: 11 * time.Minute, warmup: 90 * time.Second, export: 5 * time.Second, timeout: 2 * time.Second,
	collectorDownAt: time.Minute, collectorDown: 5 * time.Minute,
	targetDownAt: 5*time.Minute + 30*time.Second, targetDown: 5 * time.Minute,
	killEvery: 30 * time.Second, hupEvery: time.Minute, toggleEvery: 10 * time.Second,
	ruleEvery: time.Second, checksEvery: time.Minute,
	builds: 1000, buildWorkers: 4, opens: 1_000_000, opensAt: 60 * time.Second,
}

// fullEnv=full selects fullRun: `make test` runs `go test ./...` without
// -short, and must not take 15 minutes.
const fullEnv = "GOPATROL_SOAK"

// world is the agent's files and the servers it talks to.
type world struct {
	dir, cfg, rules, state, flag, mod, link string
	receiver                                *otlptest.Receiver
	collector                               *relay // in front of the receiver
	hook                                    *hookServer
	target                                  *relay // in front of the hook
}

const hookKey = "soak-hook-key"

func newWorld(t *testing.T, tl timeline) *world {
	t.Helper()
	w := &world{dir: t.TempDir()}
	w.rules = filepath.Join(w.dir, "rules")
	w.state = filepath.Join(w.dir, "state")
	w.flag = filepath.Join(w.dir, "breach")
	w.cfg = filepath.Join(w.dir, "agent.yaml")
	for _, d := range []string{w.rules, w.state} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w.receiver = otlptest.Start(t, otlptest.Options{})
	w.collector = newRelay(t, strings.TrimPrefix(w.receiver.GRPCEndpoint, "http://"))
	w.hook = newHookServer(t)
	w.target = newRelay(t, strings.TrimPrefix(w.hook.URL, "http://"))

	script := filepath.Join(w.dir, "breach.sh")
	writeFile(t, script, "#!/bin/sh\nif [ -e "+w.flag+" ]; then echo breach; exit 1; fi\necho fine\nexit 0\n", 0o755)
	writeFile(t, filepath.Join(w.rules, "soak.yaml"), `
- name: soak-flag
  type: exec
  target: `+script+`
  threshold: "ge(1)"
  every: `+tl.ruleEvery.String()+`
  labels: {service: soak}
  notify: ["webhook:soak"]
`, 0o644)
	writeFile(t, w.cfg, w.config(tl), 0o644)

	w.link = goLink(t, w.dir)
	w.mod = filepath.Join(w.dir, "m")
	if err := os.Mkdir(w.mod, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w.mod, "go.mod"), "module example.com/soak\n\ngo 1.22\n", 0o644)
	writeFile(t, filepath.Join(w.mod, "main.go"), "package main\n\nfunc main() { println(\"soak\") }\n", 0o644)
	return w
}

func (w *world) config(tl timeline) string {
	return `
state_dir: ` + w.state + `
checks:
  every: ` + tl.checksEvery.String() + `
  full_at: ""
  skip: [env.functional, cgo.toolchain, build.race-pprof, build.cacheverify, build.pie-aslr, tls.session-reuse, module.verify, module.vendor]
sensors:
  go_names: [` + goName + `, ` + openerName + `]
traces:
  enabled: false
plugins:
  dir: ` + bins.plugins + `
  probe_deadline: 5s
rules:
  dir: ` + w.rules + `
  allow_exec: true
  tick: 100ms
  resolve_after: 2
notify:
  webhooks:
    soak: {url: "http://` + w.target.addr + `", secret: {env: SOAK_HOOK_KEY}}
  retry: {initial: 200ms, max: 2s, call_timeout: 2s, poll: 500ms}
`
}

func (w *world) env(tl timeline) []string {
	return append(otlpEnv("http://"+w.collector.addr, tl.export, tl.timeout),
		"GOBIN="+w.gobin(), "SOAK_HOOK_KEY="+hookKey, "TESTPROBE_ATTRS_"+probeName+"=cloud.region=soak-1")
}

// gobin is the agent's GOBIN: the opener fails its opens under it, so
// that they are the gobin class's only failures (the builds have none).
func (w *world) gobin() string { return filepath.Join(w.dir, "gobin") }

func writeFile(t testing.TB, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

// hookServer is the notification target: it verifies each webhook's
// signature and keeps what arrived, and when.
type hookServer struct {
	*httptest.Server
	mu   sync.Mutex
	got  []delivery
	bad  int // unsigned or badly signed
	seen map[string]int
}

type delivery struct {
	ID, Key  string
	Kind     notify.Kind
	Enqueued time.Time
	Arrived  time.Time
}

func newHookServer(t testing.TB) *hookServer {
	h := &hookServer{seen: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := notify.Verify([]byte(hookKey), r.Header.Get(notify.TimestampHeader), r.Header.Get(notify.SignatureHeader), body, time.Now(), time.Minute); err != nil {
			h.bad++
			http.Error(rw, err.Error(), http.StatusUnauthorized)
			return
		}
		var m notify.Message
		if err := json.Unmarshal(body, &m); err != nil {
			h.bad++
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		h.got = append(h.got, delivery{ID: m.ID, Key: m.Key, Kind: m.Kind, Enqueued: m.Enqueued, Arrived: time.Now()})
		h.seen[m.ID]++
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) deliveries() ([]delivery, map[string]int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := make(map[string]int, len(h.seen))
	for k, v := range h.seen {
		seen[k] = v
	}
	return append([]delivery(nil), h.got...), seen, h.bad
}

// journal is the run's record: samples of the agent's RSS and CPU, and
// the faults as they were injected, from the start of the run.
type journal struct {
	start time.Time
	mu    sync.Mutex
	// samples every sampleEvery; events, "kind" at t.
	samples []point
	events  []event
}

type point struct {
	T      time.Duration
	RSS    int64
	CPU    time.Duration
	Probes int // plugin processes alive
}

type event struct {
	T    time.Duration
	Kind string
}

func (j *journal) mark(kind string) {
	j.mu.Lock()
	j.events = append(j.events, event{time.Since(j.start), kind})
	j.mu.Unlock()
}

func (j *journal) count(kind string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, e := range j.events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// TestSoak runs the agent through every fault at once, as a node's bad
// month would: the collector and the notification target go away and
// come back, the plugin is killed, broken configs and rule sets arrive,
// builds and failing opens run, and memory must stay flat.
func TestSoak(t *testing.T) {
	bpftest.Require(t)
	tl := shortRun
	if os.Getenv(fullEnv) == "full" && !testing.Short() {
		tl = fullRun
	}
	w := newWorld(t, tl)
	started := time.Now()
	p := startAgent(t, w.cfg, w.env(tl))
	ready := p.waitReady(t, started)
	t.Logf("start to ready: %v", ready)
	pid := p.cmd.Process.Pid
	j := &journal{start: time.Now()}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	every := func(d time.Duration, f func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(d)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					f(i)
				}
			}
		}()
	}
	at := func(d time.Duration, f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
			case <-time.After(d):
				f()
			}
		}()
	}

	// Memory and CPU, and the plugin processes, every second.
	sampleEvery := time.Second
	if testing.Short() {
		sampleEvery = 250 * time.Millisecond
	}
	var healthErrs []string
	var hmu sync.Mutex
	every(sampleEvery, func(int) {
		u, err := sample(pid)
		if err != nil {
			return
		}
		n := len(children(pid, probeExe()))
		j.mu.Lock()
		j.samples = append(j.samples, point{T: time.Since(j.start), RSS: u.RSS, CPU: u.CPU, Probes: n})
		j.mu.Unlock()
		if code, body := p.get("/healthz"); code != http.StatusOK {
			hmu.Lock()
			healthErrs = append(healthErrs, fmt.Sprintf("%v: %d %s", time.Since(j.start).Round(time.Second), code, body))
			hmu.Unlock()
		}
	})

	// The plugin, SIGKILLed.
	var killed []int
	every(tl.killEvery, func(int) {
		for _, c := range children(pid, probeExe()) {
			if syscall.Kill(c, syscall.SIGKILL) == nil {
				killed = append(killed, c)
				j.mark("plugin killed")
			}
		}
	})

	// SIGHUP with a broken config, then with a broken rule set.
	good, _ := os.ReadFile(w.cfg)
	brokenRules := filepath.Join(w.rules, "broken.yaml")
	every(tl.hupEvery, func(i int) {
		if i%2 == 0 {
			writeFile(t, w.cfg, string(good)+"checks:\n  evry: 1m\n", 0o644)
			before := p.logCount("reload refused; the running config stays")
			p.cmd.Process.Signal(syscall.SIGHUP)
			j.mark("broken config")
			if !eventually(30*time.Second, func() bool { return p.logCount("reload refused; the running config stays") > before }) {
				t.Error("a broken config's SIGHUP was not refused within 30s")
			}
			writeFile(t, w.cfg, string(good), 0o644)
			return
		}
		writeFile(t, brokenRules, "- name: half\n  type: exec\n  threshold: \"gt(\"\n", 0o644)
		before := p.logCount("rule reload refused")
		p.cmd.Process.Signal(syscall.SIGHUP)
		j.mark("broken rules")
		if !eventually(30*time.Second, func() bool { return p.logCount("rule reload refused") > before }) {
			t.Error("a broken rule set's SIGHUP was not refused within 30s")
		}
		os.Remove(brokenRules)
	})

	// The rule's breach flips: one firing and one resolving notification
	// per cycle.
	toggles := 0
	every(tl.toggleEvery, func(int) {
		if toggles%2 == 0 {
			writeFile(t, w.flag, "", 0o644)
		} else {
			os.Remove(w.flag)
		}
		toggles++
	})

	// The collector and the target, away and back.
	at(tl.collectorDownAt, func() { w.collector.Down(); j.mark("collector down") })
	at(tl.collectorDownAt+tl.collectorDown, func() { w.collector.Up(t); j.mark("collector up") })
	at(tl.targetDownAt, func() { w.target.Down(); j.mark("target down") })
	at(tl.targetDownAt+tl.targetDown, func() { w.target.Up(t); j.mark("target up") })

	// The failing opens, in a tree of their own. A Go binary's failures
	// are seen once the sensors have placed their uprobe in it, which they
	// do when it first runs in a tree: its first run is a short one, so
	// that the storm runs in a binary already probed.
	var opened string
	at(tl.opensAt, func() {
		if out, err := run(ctx, time.Minute, w.dir, nil, bins.opener, "1000", "no/such/file"); err != nil {
			t.Errorf("opener's first run: %v\n%s", err, out)
			return
		}
		if !eventually(30*time.Second, func() bool { return p.logCount("probed Go binary first seen in a tree") > 0 }) {
			t.Error("the opener's first run did not get a uprobe within 30s")
		}
		j.mark("opens start")
		// Bounded by the run, not by the faults' end: on a loaded machine a
		// million uprobe'd failures take minutes.
		out, err := run(context.Background(), tl.total, w.dir, nil, bins.opener, fmt.Sprint(tl.opens), filepath.Join(w.gobin(), "no", "such", "file"))
		if err != nil {
			t.Errorf("opener: %v\n%s", err, out)
		}
		opened = strings.TrimSpace(string(out))
		j.mark("opens end")
	})

	// The builds, spread over the run, with the machine's warm build
	// cache: each is a real go build that compiles little and links. They
	// finish even after the faults stop, within a bound; a build cut by
	// the bound still counts, as its go command ran.
	var builds, buildFails atomic.Int64
	buildsDone := make(chan struct{})
	go func() {
		defer close(buildsDone)
		span := tl.total - 10*time.Second
		env := []string{"GOFLAGS=", "GOTOOLCHAIN=local", "GOWORK=off"}
		bctx, bcancel := context.WithTimeout(context.Background(), tl.total+3*time.Minute)
		defer bcancel()
		var next atomic.Int64
		var bw sync.WaitGroup
		for range tl.buildWorkers {
			bw.Add(1)
			go func() {
				defer bw.Done()
				for i := int(next.Add(1)) - 1; i < tl.builds; i = int(next.Add(1)) - 1 {
					time.Sleep(time.Until(j.start.Add(span * time.Duration(i) / time.Duration(tl.builds))))
					if bctx.Err() != nil {
						return // the bound: this build and the rest never ran
					}
					if out, err := run(bctx, 3*time.Minute, w.mod, env, w.link, "build", "-o", os.DevNull, "."); err != nil {
						buildFails.Add(1)
						t.Logf("build %d: %v\n%.500s", i, err, out)
					}
					builds.Add(1)
				}
			}()
		}
		bw.Wait()
	}()

	time.Sleep(tl.total)
	cancel()
	wg.Wait()
	<-buildsDone
	// The rule's last flip resolved (the flag is gone), the target is back:
	// the outbox must empty.
	os.Remove(w.flag)
	os.Remove(brokenRules)
	writeFile(t, w.cfg, string(good), 0o644)
	// The last kill may be a moment old: the plugin must be back (and
	// /status, which the final export's probe.up reads, must say so).
	if !eventually(time.Minute, func() bool {
		for _, pr := range p.status(t).Probes {
			if pr.Plugin == probeName && pr.Up {
				return true
			}
		}
		return false
	}) {
		t.Errorf("the plugin %s not up again a minute after the last kill", probeName)
	}
	// One notification per flip, and the resolution of a last flip on.
	wantMsgs := toggles + toggles%2
	if !eventually(2*time.Minute, func() bool { got, _, _ := w.hook.deliveries(); return len(got) >= wantMsgs }) {
		got, _, _ := w.hook.deliveries()
		var kinds []string
		for _, d := range got {
			kinds = append(kinds, string(d.Kind)+"@"+d.Arrived.Sub(j.start).Round(100*time.Millisecond).String())
		}
		j.mu.Lock()
		t.Fatalf("%d notifications at the target 2 minutes after the run, want %d: %v\nevents %v", len(got), wantMsgs, kinds, j.events)
	}
	time.Sleep(3 * tl.export) // a duplicate would arrive meanwhile
	end, _ := sample(pid)
	st := p.status(t)
	if err := p.stop(t, syscall.SIGTERM, time.Minute); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}

	// Nothing left of the plugins.
	if left := children(0, probeExe()); len(left) > 0 {
		t.Errorf("plugin processes left after the agent stopped: %v", left)
	}
	// The collector's outage: cumulative points, so nothing is lost; the
	// failed exports are themselves exported.
	reqs := w.receiver.Requests()
	execs, _, _ := latest(reqs, "gopatrol.toolchain.execs", map[string]string{"process.executable.name": goName})
	_, invocations, _ := latest(reqs, "gopatrol.toolchain.invocation.duration", map[string]string{"gopatrol.go.subcommand": "build"})
	lost, _, _ := latest(reqs, "gopatrol.sensor.lost_events", nil)
	failures, _, _ := latest(reqs, "gopatrol.agent.export.failures", nil)
	enoent, _, _ := latest(reqs, "gopatrol.file_access.failures", map[string]string{"gopatrol.file.class": "gobin", "error.type": "ENOENT"})
	t.Logf("builds %d (%d failed), execs{%s} %v, build invocations %d, lost events %v, export failures %v, ENOENT failures %v (opener: %s)",
		builds.Load(), buildFails.Load(), goName, execs, invocations, lost, failures, enoent, opened)
	if builds.Load() != int64(tl.builds) || buildFails.Load() != 0 {
		t.Errorf("%d builds ran, %d failed; want %d, none failed", builds.Load(), buildFails.Load(), tl.builds)
	}
	if int64(execs) != builds.Load() || int64(invocations) != builds.Load() {
		t.Errorf("points lost: execs{%s} %v and build invocations %d at the receiver, want the %d builds", goName, execs, invocations, builds.Load())
	}
	if lost != 0 {
		t.Errorf("gopatrol.sensor.lost_events = %v, want 0", lost)
	}
	if opened != fmt.Sprint(tl.opens) {
		t.Errorf("the opener failed %s opens, want %d", opened, tl.opens)
	}
	if int(enoent) != tl.opens {
		t.Errorf("gopatrol.file_access.failures{gobin, ENOENT} = %v at the receiver, want the opener's %d", enoent, tl.opens)
	}
	if wantFail := int(tl.collectorDown / (tl.export + tl.timeout) / 2); int(failures) < wantFail {
		t.Errorf("gopatrol.agent.export.failures = %v after a %v outage, want at least %d", failures, tl.collectorDown, wantFail)
	}

	// The plugin: every kill seen and restarted, never two at once.
	restarts := p.logCount("probe plugin down, restarting after backoff")
	if restarts < len(killed) {
		t.Errorf("%d plugin kills, %d logged as down and restarting", len(killed), restarts)
	}
	if len(killed) == 0 {
		t.Error("no plugin process was ever found to kill")
	}
	j.mu.Lock()
	for _, s := range j.samples {
		if s.Probes > 1 {
			t.Errorf("%d plugin processes at %v, want at most 1", s.Probes, s.T)
			break
		}
	}
	j.mu.Unlock()
	if up, _, ok := latest(reqs, "gopatrol.probe.up", map[string]string{"gopatrol.probe.plugin": probeName}); !ok || up != 1 {
		t.Errorf("gopatrol.probe.up{%s} = %v (found %v) at the end, want 1", probeName, up, ok)
	}
	downs := 0
	for i := range reqs {
		if v, _, ok := latest(reqs[i:i+1], "gopatrol.probe.up", map[string]string{"gopatrol.probe.plugin": probeName}); ok && v == 0 {
			downs++
		}
	}

	// SIGHUP: each broken one refused, counted and (rules) audited.
	badCfg, badRules := j.count("broken config"), j.count("broken rules")
	if st.Reloads["failed"] != badCfg || st.Reloads["rules_failed"] != badRules {
		t.Errorf("reloads %v, want failed %d and rules_failed %d", st.Reloads, badCfg, badRules)
	}
	if st.Rules.Rules != 1 {
		t.Errorf("%d rules in force, want the 1 good one", st.Rules.Rules)
	}
	audit, err := patrol.ReadAudit(patrol.AuditPath(w.state))
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	kinds := map[string]int{}
	for _, e := range audit {
		kinds[e.Kind]++
	}
	if kinds[patrol.AuditLoadFailed] != badRules {
		t.Errorf("%d load_failed audit lines, want %d", kinds[patrol.AuditLoadFailed], badRules)
	}

	// The target's outage: every notification delivered, none twice.
	got, seen, bad := w.hook.deliveries()
	if bad != 0 {
		t.Errorf("%d webhook requests failed their signature or body", bad)
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("notification %s delivered %d times", id, n)
		}
	}
	if len(seen) != wantMsgs {
		t.Errorf("%d distinct notifications delivered, want %d (one per flip of the rule)", len(seen), wantMsgs)
	}
	var maxDelay time.Duration
	for _, d := range got {
		maxDelay = max(maxDelay, d.Arrived.Sub(d.Enqueued))
	}
	if kinds[patrol.AuditNotification] != wantMsgs {
		t.Errorf("%d notification audit lines, want %d", kinds[patrol.AuditNotification], wantMsgs)
	}

	// Memory flat: the end within 10 % of the warm-up.
	j.mu.Lock()
	var warm point
	for _, s := range j.samples {
		if s.T <= tl.warmup {
			warm = s
		}
	}
	j.mu.Unlock()
	growth := float64(end.RSS-warm.RSS) / float64(warm.RSS)
	t.Logf("RSS after warm-up %.1f MiB, at the end %.1f MiB (%+.1f %%); CPU %v over %v",
		mib(warm.RSS), mib(end.RSS), 100*growth, end.CPU, time.Since(j.start).Round(time.Second))
	if growth > 0.10 {
		t.Errorf("RSS grew %.1f %% from warm-up (%.1f MiB) to the end (%.1f MiB), want at most 10 %%", 100*growth, mib(warm.RSS), mib(end.RSS))
	}
	t.Logf("faults: %d plugin kills (%d restarts logged, probe.up 0 in %d exports), %d broken configs, %d broken rule sets; notifications %d, max delay %v; health errors %d",
		len(killed), restarts, downs, badCfg, badRules, len(got), maxDelay.Round(time.Millisecond), len(healthErrs))
	if len(healthErrs) > 0 {
		t.Errorf("/healthz not 200 during the soak: %v", healthErrs[:min(5, len(healthErrs))])
	}

	if out := os.Getenv("SOAK_OUT"); out != "" {
		r := report{Timeline: tl.String(), ReadyIn: ready, Builds: int(builds.Load()), Execs: int(execs), LostEvents: int(lost),
			Opens: tl.opens, ENOENT: int(enoent), ExportFailures: int(failures), PluginKills: len(killed),
			Restarts: restarts, BrokenConfigs: badCfg, BrokenRules: badRules, Notifications: len(got),
			MaxDelay: maxDelay, WarmRSS: warm.RSS, EndRSS: end.RSS}
		if err := writeRun(out, j, r); err != nil {
			t.Errorf("SOAK_OUT: %v", err)
		}
	}
}

func probeExe() string { return filepath.Join(bins.plugins, "gopatrol-probe-"+probeName) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (tl timeline) String() string {
	return fmt.Sprintf("%v run, collector down %v at %v, target down %v at %v, plugin killed every %v, broken SIGHUP every %v, %d builds, %d failing opens",
		tl.total, tl.collectorDown, tl.collectorDownAt, tl.targetDown, tl.targetDownAt, tl.killEvery, tl.hupEvery, tl.builds, tl.opens)
}
