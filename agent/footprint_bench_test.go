package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/plugins/probetest"
)

// vendorProbes are the five cloud probes, as `make build` ships them:
// five names (hard links) of one multi-call binary.
var vendorProbes = probetest.Builtins()

// buildVendorProbes compiles the five probes into a plugin directory
// with its manifest, as `make build` lays them out.
func buildVendorProbes(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := probetest.Build(dir, vendorProbes); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// children are the PIDs whose parent is pid (the agent's plugins and
// whatever check runs at that moment).
func children(tb testing.TB, pid int) []int {
	tb.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c))
		if err != nil {
			continue // gone meanwhile
		}
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			out = append(out, c)
		}
	}
	return out
}

// plugins are the agent's children that are probe plugins.
func plugins(tb testing.TB, pid int) []int {
	var out []int
	for _, c := range children(tb, pid) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", c))
		if strings.Contains(filepath.Base(exe), "gopatrol-probe-") {
			out = append(out, c)
		}
	}
	return out
}

// memory is a process's footprint from /proc/PID/smaps_rollup, in KiB.
// RSS counts every resident page the process maps, PSS divides each
// shared page among the processes that map it (so a sum of PSS counts a
// page once, as the node's memory and the pod's cgroup pay it), and anon
// is the part no file backs: heaps and stacks, what the kernel cannot
// drop and re-read.
type memory struct{ rss, pss, anon float64 }

func (m memory) plus(o memory) memory {
	return memory{m.rss + o.rss, m.pss + o.pss, m.anon + o.anon}
}

// memoryKiB reads pid's smaps_rollup.
func memoryKiB(b *testing.B, pid int) memory {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		b.Fatal(err)
	}
	var m memory
	fields := map[string]*float64{"Rss:": &m.rss, "Pss:": &m.pss, "Anonymous:": &m.anon}
	seen := 0
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[2] == "kB" && fields[f[0]] != nil {
			if _, err := fmt.Sscan(f[1], fields[f[0]]); err != nil {
				b.Fatalf("/proc/%d/smaps_rollup: %q: %v", pid, l, err)
			}
			seen++
		}
	}
	if seen != len(fields) {
		b.Fatalf("/proc/%d/smaps_rollup lacks Rss, Pss or Anonymous:\n%s", pid, raw)
	}
	return m
}

// footprintWindow is how long BenchmarkAgentFootprint runs the agent
// (issue 11: RSS after 10 minutes, idle CPU over 5; GOPATROL_FOOTPRINT_WINDOW=10m
// for the figures).
func footprintWindow(b *testing.B) time.Duration {
	if v := os.Getenv("GOPATROL_FOOTPRINT_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("GOPATROL_FOOTPRINT_WINDOW=%s: %v", v, err)
		}
		return d
	}
	return 30 * time.Second
}

// BenchmarkAgentFootprint runs the agent as a node runs it, sensors on,
// the five vendor probes supervised (off-cloud: their metadata endpoints
// refuse), the default patrol every 5 minutes and an export every 10 s,
// for the window, with no build of its trees. At the end it reports the
// memory of the agent and of the agent plus its plugins, each as RSS,
// PSS and anonymous memory. Issue 11's budgets: 48 MiB RSS for the
// agent; 96 MiB for all, judged on PSS: the five probes are one binary
// whose pages their processes share, which a sum of RSS counts five
// times and the node once (docs/benchmarks.md). It also reports the CPU
// share of one core the agent used over the window (0.5 %; the patrols'
// go commands are its children, not it), and the agent with its plugins.
// The sensors watch trees named gopatrolgo only: other tenants' builds on
// a shared machine are not this node's idle.
func BenchmarkAgentFootprint(b *testing.B) {
	dir := buildVendorProbes(b)
	window := footprintWindow(b)
	closed := "127.0.0.1:9" // discard: nothing listens on loopback there
	cfg := strings.Replace(quietConfig, "every: 1h", "every: 5m", 1)
	cfg = strings.Replace(cfg, "enabled: false", "go_names: [gopatrolgo]", 1) + "plugins:\n  dir: " + dir + "\n"
	var agent, total memory
	var share, shareAgent float64
	for range b.N {
		p := startAgent(b, agentOpts{config: cfg, env: []string{
			"OTEL_METRICS_EXPORTER=none", "OTEL_METRIC_EXPORT_INTERVAL=10000",
			"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://" + closed, "GOPATROL_ALIBABA_METADATA_ENDPOINT=http://" + closed,
			"GCE_METADATA_HOST=" + closed, "GOPATROL_AZURE_IMDS_ENDPOINT=http://" + closed,
			"KUBERNETES_SERVICE_HOST=", "KUBERNETES_SERVICE_PORT=",
		}})
		p.waitReady(b)
		pid := p.cmd.Process.Pid
		probes := plugins(b, pid)
		if len(probes) != len(vendorProbes) {
			b.Fatalf("%d plugin processes under the agent, want %d", len(probes), len(vendorProbes))
		}
		cpu := func() (agent, all float64) {
			agent = cpuSeconds(b, pid)
			all = agent
			for _, c := range probes {
				all += cpuSeconds(b, c)
			}
			return agent, all
		}
		a0, c0 := cpu()
		time.Sleep(window)
		a1, c1 := cpu()
		shareAgent += (a1 - a0) / window.Seconds()
		share += (c1 - c0) / window.Seconds()
		a := memoryKiB(b, pid)
		all := a
		for _, c := range plugins(b, pid) {
			all = all.plus(memoryKiB(b, c))
		}
		agent, total = maxMemory(agent, a), maxMemory(total, all)
		if err := p.stop(b, syscall.SIGTERM, 30*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(agent.rss/1024, "MiB-rss-agent")
	b.ReportMetric(agent.pss/1024, "MiB-pss-agent")
	b.ReportMetric(agent.anon/1024, "MiB-anon-agent")
	b.ReportMetric(total.rss/1024, "MiB-rss-with-plugins")
	b.ReportMetric(total.pss/1024, "MiB-pss-with-plugins")
	b.ReportMetric(total.anon/1024, "MiB-anon-with-plugins")
	b.ReportMetric(100*shareAgent/float64(b.N), "%cpu-agent")
	b.ReportMetric(100*share/float64(b.N), "%cpu-with-plugins")
	b.ReportMetric(load1(b), "load1")
	b.ReportMetric(window.Seconds(), "s-window")
}

// maxMemory keeps the larger of each figure over the benchmark's runs.
func maxMemory(a, b memory) memory {
	return memory{max(a.rss, b.rss), max(a.pss, b.pss), max(a.anon, b.anon)}
}

// BenchmarkAgentCPUBesideBuild runs `go build -a std` (a fresh GOCACHE)
// beside the agent, whose sensors watch that build's tree, and reports
// the agent's CPU time over the build as a share of the build's own CPU
// time (its whole tree, from the kernel's accounting of the waited-for
// processes), both measured in the same run. Issue 11's budget: 2 %.
// On a loaded machine the build's wall time stretches, and with it what
// the agent spends anyway (export loop, runtime); the agent's idle rate,
// measured over idleBeforeBuild just before, is reported and the share
// above it too. No traces are exported (OTEL_TRACES_EXPORTER=none): the
// build traces' cost is BenchmarkBuildTraceCost's.
func BenchmarkAgentCPUBesideBuild(b *testing.B) {
	const idleBeforeBuild = 30 * time.Second
	var ratio, above float64
	for range b.N {
		p := startAgent(b, agentOpts{config: strings.Replace(quietConfig, "enabled: false", "enabled: true", 1),
			env: []string{"OTEL_METRICS_EXPORTER=none", "OTEL_TRACES_EXPORTER=none", "OTEL_METRIC_EXPORT_INTERVAL=10000"}})
		p.waitReady(b)
		pid := p.cmd.Process.Pid
		i0 := cpuSeconds(b, pid)
		time.Sleep(idleBeforeBuild)
		c0 := cpuSeconds(b, pid)
		idleRate := (c0 - i0) / idleBeforeBuild.Seconds()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		build := exec.CommandContext(ctx, "go", "build", "-a", "std")
		build.Env = append(os.Environ(), "GOCACHE="+b.TempDir(), "GOFLAGS=")
		build.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		build.Cancel = func() error { return syscall.Kill(-build.Process.Pid, syscall.SIGKILL) }
		start := time.Now()
		out, err := build.CombinedOutput()
		wall := time.Since(start)
		cancel()
		if err != nil {
			b.Fatalf("go build -a std: %v\n%s", err, out)
		}
		agentCPU := cpuSeconds(b, pid) - c0
		buildCPU := (build.ProcessState.UserTime() + build.ProcessState.SystemTime()).Seconds()
		ratio += agentCPU / buildCPU
		above += (agentCPU - idleRate*wall.Seconds()) / buildCPU
		b.ReportMetric(buildCPU, "s-cpu-build")
		b.ReportMetric(wall.Seconds(), "s-wall-build")
		b.ReportMetric(agentCPU, "s-cpu-agent")
		b.ReportMetric(100*idleRate, "%cpu-agent-idle")
		if err := p.stop(b, syscall.SIGTERM, 30*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(100*ratio/float64(b.N), "%agent-of-build")
	b.ReportMetric(100*above/float64(b.N), "%agent-above-idle-of-build")
	b.ReportMetric(load1(b), "load1")
}
