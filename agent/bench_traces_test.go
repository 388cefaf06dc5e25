package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/bpf/bpftest"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

// Issue 16's budgets for build traces, as fractions: tracing every build
// adds at most 1 % to the agent's CPU beyond the metrics-only mode, and at
// most 0.5 % to the build's wall time.
const (
	traceAgentCPUBudget = 0.01
	traceBuildBudget    = 0.005
)

// traceBenchConfig is both sides' agent: the sensors watching only
// traceBenchGo, a name no other test's builds use (other sessions' agent
// tests build through gopatrolgo on the same machine, and the tracing
// side would trace their builds too), and the environment patrol off,
// whose checks of the build's go environment run at moments of their own
// and moved the agent's CPU by a second from one side to the next
// (docs/benchmarks.md).
const traceBenchGo = "gptracebenchgo"

var traceBenchConfig = strings.Replace(sensorConfig, "go_names: [gopatrolgo]", "go_names: ["+traceBenchGo+"]", 1) +
	"environments:\n  enabled: false\n"

// BenchmarkBuildTraceCost runs the real agent with its sensors twice per
// pair, metrics only (traces.enabled: false) and tracing every build
// (traces.share: 1, spans exported over OTLP gRPC to a receiver on
// loopback), in alternating order, each side around the same `go build
// -a` (every package rebuilt). GOPATROL_BENCH_STD=1 builds `go build -a
// std`, the issue's workload (about 65 s per build on a quiet 2-vCPU
// machine, three builds per pair with the warm-up; ten minutes a build at
// load 25); the default is a module of ten packages over 70-odd std
// packages, the same kind of tree a quarter of the size.
// GOPATROL_BENCH_PAIRS sets the number of pairs (default 3). The metrics
// are exported at the default interval (OTEL_METRIC_EXPORT_INTERVAL 60 s):
// a shorter one would add export work to both sides and shrink the ratio.
//
// The agent's CPU is the run time of its threads (schedstat, in ns) from
// just before the build to the end of a settle window after it (on the
// tracing side, at least until the build's root span has reached the
// receiver). Figures are the median of the pairs: agent-cpu-on/off, and
// build on/off (wall). The budgets checked:
//   - the issue's own figure: the agent's CPU tracing over metrics only,
//     agent-cpu-on/off <= 1.01;
//   - derived, for what a shared machine can resolve: the agent's added CPU
//     per build as a share of one core over the build's wall time (the
//     agent's CPU usage rises by at most 1 point);
//   - derived, for the build's 0.5 %: the agent's added CPU as a share of
//     the build's own CPU; on saturated cores that is all the wall time the
//     agent can take from the build, a bound that the build's noisy wall
//     ratio cannot resolve. The wall ratio is reported only.
//
// docs/benchmarks.md has the figures and says which is which.
func BenchmarkBuildTraceCost(b *testing.B) {
	bpftest.Require(b)
	if !strings.Contains(traceBenchConfig, traceBenchGo) {
		b.Fatalf("sensorConfig no longer names gopatrolgo; traceBenchConfig watches:\n%s", traceBenchConfig)
	}
	r := otlptest.Start(b, otlptest.Options{})
	dir := b.TempDir()
	link := filepath.Join(dir, traceBenchGo)
	if err := os.Symlink(goLinkTarget(b), link); err != nil {
		b.Fatal(err)
	}
	mod := filepath.Join(dir, "m")
	writeTraceBenchModule(b, mod)
	args := []string{"build", "-a", "-o", os.DevNull, "./..."}
	if os.Getenv("GOPATROL_BENCH_STD") == "1" {
		args = []string{"build", "-a", "std"}
	}
	cache := filepath.Join(dir, "cache")
	env := append(otlpEnv(r, time.Minute), "OTEL_TRACES_EXPORTER=otlp")
	sides := [2]string{
		traceBenchConfig + "traces:\n  enabled: false\n",
		traceBenchConfig + "traces:\n  share: 1\n",
	}
	const settle = 2 * time.Second
	pairs := 3
	if n, err := strconv.Atoi(os.Getenv("GOPATROL_BENCH_PAIRS")); err == nil && n > 0 {
		pairs = n
	}

	build := func(b *testing.B) *exec.Cmd {
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, link, args...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "GOCACHE="+cache, "GOFLAGS=", "GOTOOLCHAIN=local", "GOWORK=off", "GOPROXY=off")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %s: %v\n%s", link, strings.Join(args, " "), err, out)
		}
		return cmd
	}

	type sample struct{ agent, wall, build time.Duration }
	run := func(b *testing.B, on bool) sample {
		side := 0
		if on {
			side = 1
		}
		p := startAgent(b, agentOpts{config: sides[side], env: env})
		defer p.stop(b, syscall.SIGTERM, time.Minute)
		p.waitReady(b)
		if on {
			p.waitLog(b, "build traces on", 10*time.Second)
		}
		pid := p.cmd.Process.Pid
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before)
		cpu0 := agentCPU(b, pid)
		start := time.Now()
		cmd := build(b)
		wall := time.Since(start)
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &after)
		root := strconv.Itoa(cmd.Process.Pid)
		deadline := time.Now().Add(settle)
		if on {
			// The window closes once the build's root span has reached
			// the receiver: its export is the agent's work too.
			r.WaitSpans(b, 2*time.Minute, func(spans []otlptest.Span) bool {
				return slices.ContainsFunc(spans, func(s otlptest.Span) bool {
					return s.ParentID == "" && s.Attrs["process.pid"] == root
				})
			})
		}
		time.Sleep(time.Until(deadline))
		return sample{
			agent: agentCPU(b, pid) - cpu0,
			wall:  wall,
			build: time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()),
		}
	}

	// Warm the page cache and GOCACHE's directories for both sides.
	build(b)
	b.ResetTimer()
	var sum [2]sample
	var agentRatios, wallRatios, corePoints, buildShares []float64
	for i := range pairs * b.N {
		var s [2]sample
		for _, on := range []bool{i%2 == 1, i%2 == 0} {
			side := 0
			if on {
				side = 1
			}
			s[side] = run(b, on)
			sum[side].agent += s[side].agent
			sum[side].wall += s[side].wall
			sum[side].build += s[side].build
		}
		added := float64(s[1].agent - s[0].agent)
		agentRatios = append(agentRatios, float64(s[1].agent)/float64(s[0].agent))
		wallRatios = append(wallRatios, float64(s[1].wall)/float64(s[0].wall))
		corePoints = append(corePoints, added/float64(s[1].wall+settle))
		buildShares = append(buildShares, added/float64(s[1].build))
		b.Logf("pair %d: agent CPU off %v on %v; build wall off %v on %v; build CPU off %v on %v",
			i, s[0].agent, s[1].agent, s[0].wall.Round(time.Millisecond), s[1].wall.Round(time.Millisecond), s[0].build, s[1].build)
	}
	n := float64(pairs * b.N)
	b.ReportMetric(float64(sum[0].agent.Nanoseconds())/n, "off-agent-cpu-ns/build")
	b.ReportMetric(float64(sum[1].agent.Nanoseconds())/n, "on-agent-cpu-ns/build")
	b.ReportMetric(float64(sum[0].build.Nanoseconds())/n, "build-cpu-ns/build")
	ratio := medianOf(agentRatios)
	b.ReportMetric(ratio, "agent-cpu-on/off")
	b.ReportMetric(float64(sum[1].agent-sum[0].agent)/n/1e6, "added-agent-cpu-ms/build")
	b.ReportMetric(medianOf(wallRatios), "build-on/off")
	core, share := medianOf(corePoints), medianOf(buildShares)
	b.ReportMetric(100*core, "added-%core")
	b.ReportMetric(100*share, "added-%build-cpu")
	if ratio > 1+traceAgentCPUBudget {
		b.Errorf("tracing every build makes the agent's CPU ×%.3f of metrics only, over the issue's ×%.2f", ratio, 1+traceAgentCPUBudget)
	}
	if core > traceAgentCPUBudget {
		b.Errorf("tracing every build adds %.2f %% of a core to the agent, over the %.1f %% budget", 100*core, 100*traceAgentCPUBudget)
	}
	if share > traceBuildBudget {
		b.Errorf("tracing every build adds agent CPU worth %.2f %% of the build's CPU, over the %.1f %% budget", 100*share, 100*traceBuildBudget)
	}
}

// agentCPU is the run time of every thread of pid so far (the first field
// of each thread's schedstat, in ns): /proc/pid/stat counts in 10 ms ticks,
// too coarse for a build's share.
func agentCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("threads of agent pid %d: %v", pid, err)
	}
	var sum time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited between the glob and the read
		}
		f := strings.Fields(string(data))
		if len(f) == 0 {
			b.Fatalf("%s: empty", t)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			b.Fatalf("%s: %q: %v", t, data, err)
		}
		sum += time.Duration(ns)
	}
	return sum
}

func medianOf(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// writeTraceBenchModule writes a main package importing ten packages,
// each over a different part of the standard library, so that `go build
// -a` compiles about 80 packages.
func writeTraceBenchModule(b *testing.B, dir string) {
	b.Helper()
	imports := []string{"fmt", "strings", "encoding/json", "net/url", "sort", "bufio", "os", "path/filepath", "strconv", "errors"}
	files := map[string]string{"go.mod": "module example.com/tracebench\n\ngo 1.22\n"}
	var mains []string
	for i, imp := range imports {
		p := fmt.Sprintf("p%d", i)
		files[p+"/"+p+".go"] = fmt.Sprintf("package %s\n\nimport _ %q\n\nfunc F() int { return %d }\n", p, imp, i)
		mains = append(mains, fmt.Sprintf("\t_ \"example.com/tracebench/%s\"", p))
	}
	files["main.go"] = "package main\n\nimport (\n" + strings.Join(mains, "\n") + "\n)\n\nfunc main() {}\n"
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
