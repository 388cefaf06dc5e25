package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/gopatrol/gopatrol/internal/testgate"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/gopatrol/gopatrol/bpf/bpftest"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
	"github.com/gopatrol/gopatrol/plugins/host"
)

// binary is a real gopatrol, built once for the tests that signal it.
var binary string

func TestMain(m *testing.M) {
	if b := os.Getenv(envAgentBinary); b != "" {
		binary = b // re-executed in a namespace (cloud_test.go): built already
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "gopatrol-agent-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gopatrol")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	out, err := exec.CommandContext(ctx, "go", "build", "-o", binary, "github.com/gopatrol/gopatrol/cmd/gopatrol").CombinedOutput()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build gopatrol: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running `gopatrol agent`.
type proc struct {
	cmd  *exec.Cmd
	cfg  string
	addr string
	done chan struct{}
	err  error

	mu    sync.Mutex
	lines []string
}

// maxLines bounds what a test keeps of the agent's stderr.
const maxLines = 20000

// agentOpts shape one agent process.
type agentOpts struct {
	config string
	env    []string
	args   []string
	// wrap runs the agent under another command (setpriv ...).
	wrap []string
}

func startAgent(t testing.TB, o agentOpts) *proc {
	t.Helper()
	p := &proc{cfg: filepath.Join(t.TempDir(), "agent.yaml"), done: make(chan struct{})}
	if !strings.Contains(o.config, "state_dir:") {
		// Never the machine's /var/lib/gopatrol: what one test's agent
		// learned (environments, baselines) must not reach another's.
		o.config += "\nstate_dir: " + filepath.Join(filepath.Dir(p.cfg), "state") + "\n"
	}
	if err := os.WriteFile(p.cfg, []byte(o.config), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := append(append(append([]string{}, o.wrap...), binary, "agent", "--config", p.cfg, "--listen", "127.0.0.1:0"), o.args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), o.env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			if len(p.lines) < maxLines {
				p.lines = append(p.lines, sc.Text())
			}
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("agent stderr:\n%s", strings.Join(p.log(), "\n"))
		}
	})
	line := p.waitLog(t, "endpoints listening", 60*time.Second)
	var rec struct{ Addr string }
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Addr == "" {
		t.Fatalf("no address in %q: %v", line, err)
	}
	p.addr = rec.Addr
	return p
}

func (p *proc) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// waitLog returns the first log line containing s.
func (p *proc) waitLog(t testing.TB, s string, timeout time.Duration) string {
	t.Helper()
	var found string
	waitFor(t, timeout, "log line "+s, func() bool {
		for _, l := range p.log() {
			if strings.Contains(l, s) {
				found = l
				return true
			}
		}
		select {
		case <-p.done:
			t.Fatalf("agent exited (%v) before logging %q", p.err, s)
		default:
		}
		return false
	})
	return found
}

func (p *proc) get(t testing.TB, path string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b)
}

func (p *proc) waitReady(t testing.TB) string {
	t.Helper()
	var body string
	waitFor(t, 3*time.Minute, "/readyz 200", func() bool {
		var code int
		code, body = p.get(t, "/readyz")
		return code == http.StatusOK
	})
	return body
}

// stop sends sig and waits for the exit, bounded.
func (p *proc) stop(t testing.TB, sig syscall.Signal, timeout time.Duration) error {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("agent still running %v after %v", timeout, sig)
		return nil
	}
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// quietConfig runs no sensors and one patrol per hour: the tests that
// are not about them start fast.
const quietConfig = `
checks:
  every: 1h
  full_at: ""
  skip: [build.race-pprof, build.cacheverify]
sensors:
  enabled: false
`

func otlpEnv(r *otlptest.Receiver, interval time.Duration) []string {
	return []string{
		"OTEL_METRICS_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + r.GRPCEndpoint,
		fmt.Sprintf("OTEL_METRIC_EXPORT_INTERVAL=%d", interval.Milliseconds()),
	}
}

// latest adds the latest cumulative value of metric name over the points
// whose attributes include want.
func latest(reqs []otlptest.Request, name string, want map[string]string) (float64, uint64) {
	var v float64
	var n uint64
	// Cumulative points: the last export holds the totals.
	for i := len(reqs) - 1; i >= 0; i-- {
		found := false
		v, n = 0, 0
		for _, p := range otlptest.Points(reqs[i : i+1]) {
			if p.Metric != name || !contains(p.Attrs, want) {
				continue
			}
			found = true
			v += p.Value
			n += p.Count
		}
		if found {
			return v, n
		}
	}
	return 0, 0
}

func contains(attrs, want map[string]string) bool {
	for k, v := range want {
		if attrs[k] != v {
			return false
		}
	}
	return true
}

// A go build of a fresh module while the agent runs reaches the receiver:
// gopatrol.toolchain.execs of compile counts the compiles that
// `go build -x` printed (plus the tool-ID query it does not print), and
// an invocation of subcommand build is timed. The build runs through
// goLink (sensorConfig).
func TestGoBuildReachesReceiverAsExecs(t *testing.T) {
	bpftest.Require(t)
	r := otlptest.Start(t, otlptest.Options{})
	p := startAgent(t, agentOpts{config: sensorConfig, env: otlpEnv(r, time.Second)})
	if body := p.waitReady(t); !strings.Contains(body, "sensors attached") {
		t.Fatalf("/readyz: %s", body)
	}

	dir := t.TempDir()
	link := goLink(t, dir)
	mod := filepath.Join(dir, "m")
	os.MkdirAll(filepath.Join(mod, "inner"), 0o755)
	stamp := time.Now().UnixNano() // a new constant: nothing cached
	files := map[string]string{
		"go.mod":         "module example.com/m\n\ngo 1.22\n",
		"main.go":        fmt.Sprintf("package main\n\nimport \"example.com/m/inner\"\n\nfunc main() { println(inner.V, %d) }\n", stamp),
		"inner/inner.go": fmt.Sprintf("package inner\n\nconst V = %d\n", stamp),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(mod, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, link, "build", "-x", "-o", filepath.Join(dir, "m.bin"), ".")
	build.Dir = mod
	build.Env = append(os.Environ(), "GOFLAGS=", "GOTOOLCHAIN=local", "GOWORK=off")
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	compiles := 0
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && filepath.Base(f[0]) == "compile" {
			compiles++
		}
	}
	if compiles == 0 {
		t.Fatalf("go build -x printed no compile:\n%s", out)
	}
	// SIGTERM flushes the last points.
	if err := p.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("agent exit after SIGTERM: %v", err)
	}
	reqs := r.Requests()
	// cmd/go also runs `compile -V=full` once to learn the compiler's
	// tool ID for its cache keys; -x does not print that one.
	got, _ := latest(reqs, "gopatrol.toolchain.execs", map[string]string{"process.executable.name": "compile"})
	if want := compiles + 1; int(got) != want {
		t.Errorf("gopatrol.toolchain.execs{process.executable.name=compile} = %v, want %d (the %d compiles go build -x printed, and its compile -V=full)", got, want, compiles)
	}
	if _, n := latest(reqs, "gopatrol.toolchain.invocation.duration", map[string]string{"gopatrol.go.subcommand": "build"}); n != 1 {
		t.Errorf("gopatrol.toolchain.invocation.duration{subcommand=build} count = %d, want 1", n)
	}
}

// SIGTERM delivers the last points: with an export interval far longer
// than the test, the patrol's results arrive only through the final flush.
func TestSIGTERMDeliversLastPoints(t *testing.T) {
	r := otlptest.Start(t, otlptest.Options{})
	p := startAgent(t, agentOpts{config: quietConfig, env: otlpEnv(r, time.Hour)})
	p.waitReady(t)
	before := r.Count()
	start := time.Now()
	if err := p.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	t.Logf("SIGTERM to exit: %v", time.Since(start))
	reqs := r.Requests()
	if len(reqs) <= before {
		t.Fatal("no export after SIGTERM")
	}
	if v, _ := latest(reqs[before:], "gopatrol.check.result", map[string]string{"gopatrol.check.id": "go.binary", "gopatrol.check.status": "pass"}); v != 1 {
		t.Errorf("go.binary pass = %v in the final flush, want 1", v)
	}
	if !strings.Contains(strings.Join(p.log(), "\n"), `"msg":"stopped"`) {
		t.Error(`no "stopped" log line`)
	}
}

// SIGHUP with a broken config keeps the agent on the old one; a good one
// is taken.
func TestSIGHUPBrokenConfigKeepsOld(t *testing.T) {
	p := startAgent(t, agentOpts{config: quietConfig})
	p.waitReady(t)
	orig, err := os.ReadFile(p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.cfg, []byte("checks:\n  evry: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	line := p.waitLog(t, "reload refused", 30*time.Second)
	if !strings.Contains(line, "checks.evry") || !strings.Contains(line, p.cfg) {
		t.Errorf("refusal does not name the key and file: %s", line)
	}
	if code, body := p.get(t, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after a broken reload: %d %s", code, body)
	}
	// The old schedule stays: one patrol per hour.
	var st struct {
		Reloads  map[string]int
		Schedule struct {
			NextDefault time.Time `json:"next_default"`
		}
	}
	_, body := p.get(t, "/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Reloads["failed"] != 1 {
		t.Errorf("reloads %v, want one failed", st.Reloads)
	}
	if until := time.Until(st.Schedule.NextDefault); until < 50*time.Minute {
		t.Errorf("next default patrol in %v: the old every: 1h is gone", until)
	}
	// A good config is taken as a whole.
	good := strings.Replace(string(orig), "every: 1h", "every: 2h", 1)
	if err := os.WriteFile(p.cfg, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "config reloaded", 30*time.Second)
	_, body = p.get(t, "/status")
	json.Unmarshal([]byte(body), &st)
	if st.Reloads["ok"] != 1 || time.Until(st.Schedule.NextDefault) < 110*time.Minute {
		t.Errorf("after a good reload: reloads %v, next default in %v; want ok 1 and about 2h", st.Reloads, time.Until(st.Schedule.NextDefault))
	}
}

// A SIGHUP that arrives while the agent is still starting (a config
// sidecar that writes and signals at once) is a reload once it runs, never
// the signal's default action, which would end the process.
func TestSIGHUPDuringStartup(t *testing.T) {
	// startAgent returns at "endpoints listening", before export, sensors
	// and rules start; the signal goes in that window, which loading the
	// sensors' programs keeps open long enough.
	p := startAgent(t, agentOpts{config: sensorConfig, env: []string{"OTEL_METRICS_EXPORTER=none"}})
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "config reloaded", 60*time.Second)
	p.waitReady(t)
	if code, body := p.get(t, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after a SIGHUP during start: %d %s", code, body)
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

// After kill -9 the kernel holds no BPF program of the agent: nothing is
// pinned, so the programs die with the process's descriptors.
func TestKill9LeavesNoBPFProgram(t *testing.T) {
	bpftest.Require(t)
	p := startAgent(t, agentOpts{config: strings.Replace(quietConfig, "enabled: false", "enabled: true", 1)})
	p.waitLog(t, "sensors attached", 2*time.Minute)
	ids := progIDs(t, p.cmd.Process.Pid)
	if len(ids) == 0 {
		t.Fatal("the agent holds no BPF program after attaching its sensors")
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	waitFor(t, 30*time.Second, "the agent's BPF programs to leave the kernel", func() bool {
		for _, id := range ids {
			if prog, err := ebpf.NewProgramFromID(id); err == nil {
				prog.Close()
				return false
			}
		}
		return true
	})
}

// Without CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN the agent runs degraded:
// the doctor still patrols, /readyz and a log line say "sensors off" and
// why; --require-sensors makes it fatal instead.
func TestDegradedWithoutBPF(t *testing.T) {
	// Where BPF is required (CI), this test must run too: it is the
	// other half of the sensors' contract.
	skip := func(why string) { testgate.Missing(t, "%s", why) }
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		skip("setpriv not installed: cannot drop capabilities")
	}
	if os.Geteuid() != 0 {
		skip("dropping capabilities from the bounding set needs root")
	}
	wrap := []string{setpriv, "--bounding-set=-bpf,-perfmon,-sys_admin", "--"}
	cfg := strings.Replace(quietConfig, "enabled: false", "enabled: true", 1)
	p := startAgent(t, agentOpts{config: cfg, wrap: wrap})
	line := p.waitLog(t, "sensors off", 60*time.Second)
	if !strings.Contains(line, "CAP_BPF") {
		t.Errorf("the log does not say why: %s", line)
	}
	if body := p.waitReady(t); !strings.Contains(body, "sensors off") || !strings.Contains(body, "CAP_BPF") {
		t.Errorf("/readyz: %q, want sensors off and why", body)
	}

	q := exec.Command(wrap[0], append(wrap[1:], binary, "agent", "--config", p.cfg, "--listen", "127.0.0.1:0", "--require-sensors")...)
	q.Env = os.Environ()
	done := make(chan struct{})
	var out []byte
	go func() { out, err = q.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		q.Process.Kill()
		t.Fatal("--require-sensors without BPF did not exit")
	}
	if q.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "sensors required") {
		t.Errorf("--require-sensors: exit %d, output %s; want exit 1 saying sensors required", q.ProcessState.ExitCode(), out)
	}
}

// A config error is exit 2 naming the file and the key, before anything
// starts.
func TestBadConfigExit2(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(cfg, []byte("sensors:\n  ring_size: 3\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "agent", "--config", cfg)
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{cfg, "sensors.ring_size", "power of two"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output %q does not name %q", out, want)
		}
	}
}

// pluginDir builds pkg as the probe plugin name in a new directory, with
// the SHA256SUMS manifest the plugin host verifies it against.
func pluginDir(t *testing.T, name, pkg string) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "gopatrol-probe-"+name), pkg).CombinedOutput(); err != nil {
		t.Fatalf("build the plugin %s: %v\n%s", pkg, err, out)
	}
	if err := host.WriteManifest(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// --once is one cycle: the probe plugins' cloud.* on the resource (a real
// plugin binary, verified against its manifest), the Downward API's pod
// UID and the node's topology labels for what no probe said, one patrol,
// one export, and the exit code `gopatrol check` gives the same checks.
func TestOnceResourceAndExitCode(t *testing.T) {
	dir := pluginDir(t, "example", "../plugins/example")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	identity := filepath.Join(tmp, "identity.json")
	os.WriteFile(identity, []byte(`{"Region": "moon-1", "Instance": "i-42"}`), 0o644)
	labels := filepath.Join(tmp, "labels")
	os.WriteFile(labels, []byte("topology.kubernetes.io/region=\"earth-9\"\ntopology.kubernetes.io/zone=\"moon-1z\"\n"), 0o644)
	cfg := filepath.Join(tmp, "agent.yaml")
	os.WriteFile(cfg, []byte(quietConfig+"plugins:\n  dir: "+dir+"\nkubernetes:\n  node_labels_file: "+labels+"\nstate_dir: "+filepath.Join(tmp, "state")+"\n"), 0o644)

	r := otlptest.Start(t, otlptest.Options{})
	cmd := exec.CommandContext(ctx, binary, "agent", "--once", "--config", cfg)
	cmd.Env = append(os.Environ(), append(otlpEnv(r, time.Hour), "EXAMPLE_CLOUD_IDENTITY_FILE="+identity, "K8S_POD_UID=0b5e-uid")...)
	out, _ := cmd.CombinedOutput()
	code := cmd.ProcessState.ExitCode()

	doctor := exec.CommandContext(ctx, binary, "check", "--skip", "build.race-pprof,build.cacheverify")
	doctor.Run()
	if want := doctor.ProcessState.ExitCode(); code != want {
		t.Errorf("agent --once exit %d, gopatrol check exit %d\n%s", code, want, out)
	}
	reqs := r.Wait(t, 1, 10*time.Second)
	res, _ := otlptest.Resource(reqs)
	for k, want := range map[string]string{
		"cloud.provider": "example_cloud", "cloud.region": "moon-1", // the probe wins over the labels
		"cloud.availability_zone": "moon-1z", // the labels fill what it did not say
		"k8s.pod.uid":             "0b5e-uid",
	} {
		if res[k] != want {
			t.Errorf("resource %s = %q, want %q", k, res[k], want)
		}
	}
	if v, _ := latest(reqs, "gopatrol.probe.up", map[string]string{"gopatrol.probe.plugin": "example"}); v != 1 {
		t.Errorf("gopatrol.probe.up{example} = %v, want 1\n%s", v, out)
	}
	if v, _ := latest(reqs, "gopatrol.check.result", map[string]string{"gopatrol.check.id": "go.binary", "gopatrol.check.status": "pass"}); v != 1 {
		t.Errorf("go.binary pass = %v, want 1", v)
	}
}

// sensorConfig watches only trees started through a link named
// gopatrolgo, and runs no check that builds, so that neither the agent's
// patrols nor other builds on the machine count.
const sensorConfig = `
checks:
  every: 1h
  full_at: ""
  skip: [env.functional, cgo.toolchain, build.race-pprof, build.cacheverify, build.pie-aslr, tls.session-reuse, module.verify, module.vendor]
sensors:
  go_names: [gopatrolgo]
`

// goLink makes dir/gopatrolgo, a link to the real go: its trees are the
// only ones sensorConfig watches.
func goLink(t testing.TB, dir string) string {
	t.Helper()
	link := filepath.Join(dir, "gopatrolgo")
	if err := os.Symlink(goLinkTarget(t), link); err != nil {
		t.Fatal(err)
	}
	return link
}

// goLinkTarget is the real go binary that the links point to.
func goLinkTarget(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	goBin, err = filepath.EvalSymlinks(goBin)
	if err != nil {
		t.Fatal(err)
	}
	return goBin
}

// A build whose GOCACHE its user cannot write reaches the receiver as a
// file-access failure of the gocache class with EACCES; a go mod download
// through a loopback proxy whose certificate nobody trusts, as a failed TLS
// handshake.
func TestFileFailureAndTLSReachReceiver(t *testing.T) {
	bpftest.Require(t)
	world, err := os.MkdirTemp("", "gopatrol-agent-world")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(world) })
	os.Chmod(world, 0o755)
	gocache := filepath.Join(world, "gocache") // root's, 0755: nobody cannot write it
	os.Mkdir(gocache, 0o755)
	link := goLink(t, world)
	mod := filepath.Join(world, "m")
	os.Mkdir(mod, 0o755)
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/m\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(mod, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)

	r := otlptest.Start(t, otlptest.Options{})
	// The agent's toolchain (and so its gocache class) is the GOCACHE of
	// its environment.
	p := startAgent(t, agentOpts{config: sensorConfig, env: append(otlpEnv(r, time.Second), "GOCACHE="+gocache)})
	if body := p.waitReady(t); !strings.Contains(body, "sensors attached") {
		t.Fatalf("/readyz: %s", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", link, "build", "-o", os.DevNull, ".")
	build.Dir = mod
	build.Env = append(os.Environ(), "GOCACHE="+gocache, "HOME="+world, "GOFLAGS=", "GOTOOLCHAIN=local")
	// The go command's words for it vary (usually "permission denied"; once,
	// under load, "cannot find package" when its module index could not be
	// written): that the build failed is what counts here, and the
	// receiver's gocache/EACCES count below is the assertion.
	if out, err := build.CombinedOutput(); err == nil {
		t.Fatalf("a build with an unwritable GOCACHE succeeded: %s", out)
	} else {
		t.Logf("build with an unwritable GOCACHE: %v: %s", err, out)
	}

	srv := httptest.NewTLSServer(http.NotFoundHandler()) // its own CA, trusted by no one
	defer srv.Close()
	dl := exec.CommandContext(ctx, link, "mod", "download", "-x", "example.com/dep@v1.0.0")
	dl.Dir = mod
	dl.Env = append(os.Environ(), "GOPROXY="+srv.URL, "GONOSUMDB=*", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local",
		"GOMODCACHE="+filepath.Join(world, "modcache"), "GOCACHE="+t.TempDir())
	if out, err := dl.CombinedOutput(); err == nil || !strings.Contains(string(out), "certificate") {
		t.Fatalf("go mod download through an untrusted proxy: err %v, output %s", err, out)
	}
	if err := p.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	reqs := r.Requests()
	if v, _ := latest(reqs, "gopatrol.file_access.failures", map[string]string{"gopatrol.file.class": "gocache", "error.type": "EACCES"}); v < 1 {
		t.Errorf("gopatrol.file_access.failures{gocache, EACCES} = %v, want at least 1", v)
	}
	if v, _ := latest(reqs, "gopatrol.tls.handshakes", map[string]string{"gopatrol.tls.outcome": "failed", "server.address": "127.0.0.1"}); v < 1 {
		var seen []string
		for _, pt := range otlptest.Points(reqs) {
			if pt.Metric == "gopatrol.tls.handshakes" {
				seen = append(seen, fmt.Sprint(pt.Attrs))
			}
		}
		t.Errorf("gopatrol.tls.handshakes{failed, 127.0.0.1} = %v, want at least 1; seen %v", v, seen)
	}
}

// With the Prometheus exporter on, /metrics on the agent's own address
// serves the catalogue, the agent's self-telemetry and the Go runtime's;
// a dead OTLP collector beside it is counted and shown, and stops nothing.
func TestMetricsEndpointAndDeadCollector(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := startAgent(t, agentOpts{config: quietConfig, env: []string{
		"OTEL_METRICS_EXPORTER=otlp,prometheus", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + dead, "OTEL_EXPORTER_OTLP_TIMEOUT=500",
		"OTEL_METRIC_EXPORT_INTERVAL=1000", "OTEL_EXPORTER_PROMETHEUS_HOST=127.0.0.1", "OTEL_EXPORTER_PROMETHEUS_PORT=0",
	}})
	p.waitReady(t)
	var body string
	waitFor(t, 60*time.Second, "export failures on /metrics", func() bool {
		_, body = p.get(t, "/metrics")
		return strings.Contains(body, "gopatrol_agent_export_failures")
	})
	for _, want := range []string{`gopatrol_check_result`, `gopatrol_check_id="go.binary"`, "go_memory_used", "go_goroutine_count"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %s:\n%.3000s", want, body)
		}
	}
	var st struct {
		Export struct {
			LastError string `json:"last_error"`
		}
	}
	_, sb := p.get(t, "/status")
	if err := json.Unmarshal([]byte(sb), &st); err != nil || !strings.Contains(st.Export.LastError, dead) {
		t.Errorf("/status export.last_error = %q (%v), want it to name %s", st.Export.LastError, err, dead)
	}
	if code, hb := p.get(t, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with a dead collector: %d %s", code, hb)
	}
}

// --host-root points every check at another root: one with users but no
// Go toolchain fails go.binary there, whatever this machine has.
func TestHostRootIsWhatTheChecksSee(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	for _, f := range []string{"passwd", "group"} {
		b, err := os.ReadFile("/etc/" + f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, "etc", f), b, 0o644)
	}
	r := otlptest.Start(t, otlptest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(cfg, []byte(quietConfig+"state_dir: "+filepath.Join(filepath.Dir(cfg), "state")+"\n"), 0o644)
	cmd := exec.CommandContext(ctx, binary, "agent", "--once", "--config", cfg, "--host-root", root)
	cmd.Env = append(os.Environ(), otlpEnv(r, time.Hour)...)
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit %d, want 1 (go.binary fails in an empty root)\n%s", code, out)
	}
	reqs := r.Wait(t, 1, 10*time.Second)
	if v, _ := latest(reqs, "gopatrol.check.result", map[string]string{"gopatrol.check.id": "go.binary", "gopatrol.check.status": "fail"}); v != 1 {
		t.Errorf("go.binary fail = %v in the host root, want 1\n%s", v, out)
	}
}

// A plugin that crashes while the agent runs is reported down by
// gopatrol.probe.up, restarted by the plugin host, and up again; the
// agent stays healthy throughout.
func TestCrashingPluginIsSupervised(t *testing.T) {
	dir := pluginDir(t, "panicky", "../plugins/host/testdata/testprobe")
	marker := filepath.Join(t.TempDir(), "panic")
	r := otlptest.Start(t, otlptest.Options{})
	p := startAgent(t, agentOpts{
		config: quietConfig + "plugins:\n  dir: " + dir + "\n",
		env:    append(otlpEnv(r, 500*time.Millisecond), "TESTPROBE_ATTRS_panicky=cloud.region=r1", "TESTPROBE_PANIC_panicky="+marker),
	})
	p.waitReady(t)
	up := func(from int) (sawDown, sawUpAfter bool) {
		for _, req := range r.Requests()[from:] {
			v, _ := latest([]otlptest.Request{req}, "gopatrol.probe.up", map[string]string{"gopatrol.probe.plugin": "panicky"})
			if v == 0 && !sawDown && hasMetric(req, "gopatrol.probe.up") {
				sawDown = true
			} else if v == 1 && sawDown {
				sawUpAfter = true
			}
		}
		return
	}
	from := r.Count()
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "probe.up 0 then 1 for the crashing plugin", func() bool {
		down, back := up(from)
		return down && back
	})
	if code, body := p.get(t, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after a plugin crash: %d %s", code, body)
	}
}

func hasMetric(req otlptest.Request, name string) bool {
	for _, pt := range otlptest.Points([]otlptest.Request{req}) {
		if pt.Metric == name {
			return true
		}
	}
	return false
}

// SIGTERM during a patrol lets it run for checks.grace, then cancels it:
// the agent does not wait for a slow check.
func TestSIGTERMDuringPatrolHonoursGrace(t *testing.T) {
	cfg := strings.Replace(quietConfig, "every: 1h", "every: 1h\n  grace: 200ms", 1)
	cfg = strings.Replace(cfg, "skip: [build.race-pprof, build.cacheverify]", "skip: []", 1)
	p := startAgent(t, agentOpts{config: cfg, env: []string{"OTEL_METRICS_EXPORTER=none"}})
	waitFor(t, time.Minute, "the first patrol to run", func() bool {
		_, body := p.get(t, "/status")
		return strings.Contains(body, `"running": "default"`)
	})
	if err := p.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	log := strings.Join(p.log(), "\n")
	if !strings.Contains(log, "running checks cancelled after the grace period") {
		t.Errorf("no cancellation logged:\n%s", log)
	}
}
