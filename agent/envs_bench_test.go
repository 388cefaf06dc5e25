package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent"
	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/catalog"
)

// Issue 17's budgets: one patrol of 50 environments within a 5-minute
// cycle, and the builds beside it slowed by at most 2 %.
const (
	envCycleBudget = 5 * time.Minute
	envBuildBudget = 1.02
)

// BenchmarkPatrol50Environments patrols 50 distinct live environments
// with the agent's own round (the doctor's default set, environments
// parallel at a time, 2 as the agent's default): each is a real `go run`
// of a program that sleeps, started with its own GOPATH, GOTMPDIR, HOME
// and, for half of them, GOFLAGS, and read from /proc as the exec event's
// capture reads it. It reports:
//   - first-round-s: the first round, which proves every environment's
//     toolchain by running it (no proof is kept yet): the worst round,
//     against the 5-minute budget;
//   - cycle-s and cycle-cpu-s: the wall time and the CPU (the agent's
//     and its children's; cycle-agent-cpu-s the agent's own, which runs
//     at the agent's priority) of one round over all 50 in the steady state,
//     each round one 5-minute cycle later on the proofs' clock, so that
//     the proofs falling due are proved again as in the agent;
//   - build-with/alone: builds beside the patrol as the issue puts it: a
//     CI node building back to back, `go build -a` of a module of ten
//     packages (about 80 with the standard library), through one
//     5-minute cycle that starts with the agent's round, and through one
//     without; the median over alternating pairs of their mean build
//     times, against the 1.02 budget;
//   - build-during-round/alone: the same for the builds that started
//     while the round ran (reported: the patrol's instant cost);
//   - load1: the one-minute load average the figures ran against.
//
// GOPATROL_BENCH_PAIRS sets the number of pairs (3), GOPATROL_BENCH_NICE
// the patrol's niceness (environments.nice, 19), GOPATROL_BENCH_IDLE its
// SCHED_IDLE (environments.sched_idle, true), GOPATROL_BENCH_CYCLE the
// cycle (environments.every, 5m; a shorter one raises the patrol's share
// of it).
func BenchmarkPatrol50Environments(b *testing.B) {
	const n = 50
	dir, err := os.MkdirTemp("", "gopatrol-bench-envs")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Fatal(err)
	}
	goBin, _ = filepath.EvalSymlinks(goBin)
	sleeper := filepath.Join(dir, "sleeper")
	os.MkdirAll(sleeper, 0o755)
	os.WriteFile(filepath.Join(sleeper, "go.mod"), []byte("module example.com/sleeper\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(sleeper, "main.go"), []byte("package main\n\nimport \"time\"\n\nfunc main() { time.Sleep(time.Hour) }\n"), 0o644)
	cache := filepath.Join(dir, "envcache")

	// The 50 environments: live go commands (go run waits for its
	// program), each with variables of its own.
	var holders []*exec.Cmd
	b.Cleanup(func() {
		for _, h := range holders {
			syscall.Kill(-h.Process.Pid, syscall.SIGKILL)
			h.Wait()
		}
	})
	nice, idle := agent.DefaultEnvNice, agent.DefaultEnvs().Idle
	if v, err := strconv.Atoi(os.Getenv("GOPATROL_BENCH_NICE")); err == nil {
		nice = v
	}
	if v, err := strconv.ParseBool(os.Getenv("GOPATROL_BENCH_IDLE")); err == nil {
		idle = v
	}
	// The agent keeps proofs (checks.proof_ttl): a round proves an
	// environment's toolchain by running it only when that environment's
	// proofs fell due. Each round stands for one cycle of
	// environments.every, so the clock of the proofs moves that far per
	// round, and the rounds measured carry the share of re-proofs that
	// the agent's rounds carry.
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	proofs := &check.Proofs{Dir: filepath.Join(dir, "proofs"), TTL: check.DefaultProofTTL,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }}
	cycle := agent.DefaultEnvs().Every
	cycleLen := cycle
	if v, err := time.ParseDuration(os.Getenv("GOPATROL_BENCH_CYCLE")); err == nil && v > 0 {
		cycleLen = v
	}
	round := agent.NewEnvRound(mustDefaultSet(b), 2, nice, idle, 60*time.Second, proofs)
	nextRound := func(ctx context.Context) {
		round.Round(ctx)
		clock.Add(int64(cycle))
	}
	// The environments share one build cache, filled once here: 50 go
	// runs compiling the standard library into a cold cache at once
	// would measure a storm no steady cycle sees.
	warm := exec.Command(goBin, "build", "-o", os.DevNull, ".")
	warm.Dir = sleeper
	warm.Env = []string{"PATH=" + filepath.Dir(goBin) + ":/usr/bin:/bin", "GOCACHE=" + cache, "GOPATH=" + filepath.Join(dir, "gopath-warm"),
		"HOME=" + dir, "GOTOOLCHAIN=local", "GOPROXY=off"}
	if out, err := warm.CombinedOutput(); err != nil {
		b.Fatalf("warm the environments' build cache: %v\n%s", err, out)
	}
	for i := range n {
		d := func(name string) string {
			p := filepath.Join(dir, fmt.Sprintf("%s-%d", name, i))
			os.MkdirAll(p, 0o755)
			return p
		}
		h := exec.Command(goBin, "run", ".")
		h.Dir = sleeper
		h.Env = []string{"PATH=" + filepath.Dir(goBin) + ":/usr/bin:/bin", "GOCACHE=" + cache, "GOPATH=" + d("gopath"),
			"GOTMPDIR=" + d("tmp"), "HOME=" + d("home"), "GOTOOLCHAIN=local", "GOPROXY=off"}
		if i%2 == 1 {
			h.Env = append(h.Env, "GOFLAGS=-mod=mod")
		}
		h.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := h.Start(); err != nil {
			b.Fatal(err)
		}
		holders = append(holders, h)
		// Read while it lives, as the sensors' exec event has it read.
		if err := round.Capture(h.Process.Pid, 0); err != nil {
			b.Fatalf("environment %d: %v", i, err)
		}
	}
	if got := len(round.Entries()); got != n {
		b.Fatalf("%d environments in the inventory, want %d distinct", got, n)
	}

	ctx := context.Background()
	// cpu is the agent's own CPU (at its priority) and its children's
	// (the patrols' commands, at theirs).
	cpu := func() (self, kids time.Duration) {
		var s, k syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &s)
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &k)
		return time.Duration(s.Utime.Nano() + s.Stime.Nano()), time.Duration(k.Utime.Nano() + k.Stime.Nano())
	}
	var agentCPU []float64
	timedRound := func() (wall, used time.Duration) {
		s0, k0 := cpu()
		start := time.Now()
		nextRound(ctx)
		wall = time.Since(start)
		s1, k1 := cpu()
		used = s1 - s0 + k1 - k0
		agentCPU = append(agentCPU, (s1 - s0).Seconds())
		errs := 0
		for _, e := range round.Entries() {
			switch {
			case e.Patrol == nil || e.Patrol.Outcome == "unreachable":
				b.Fatalf("environment %s not patrolled: %+v", e.ID, e.Patrol)
			case e.Patrol.Outcome == "error":
				// A check that could not run (a go command starved
				// past its timeout on a loaded machine): counted.
				errs++
				b.Logf("environment %s: error: %s %v", e.ID, e.Patrol.Reason, e.Patrol.Problems)
			}
		}
		b.ReportMetric(float64(errs), "errors/round")
		return wall, used
	}
	// progress goes to stderr at once with -v: a run takes many minutes.
	progress := func(format string, a ...any) {
		if testing.Verbose() {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", a...)
		}
	}
	progress("%d environments captured; first round", n)
	cold, coldCPU := timedRound()
	b.ReportMetric(cold.Seconds(), "first-round-s")
	if cold > envCycleBudget {
		b.Errorf("the first round, proving all %d environments, takes %v, over the %v cycle", n, cold.Round(time.Second), envCycleBudget)
	}
	b.Logf("first round (cold caches): %v, CPU %v", cold.Round(time.Millisecond), coldCPU.Round(time.Millisecond))
	progress("first round %v, CPU %v, load %.1f", cold.Round(time.Millisecond), coldCPU.Round(time.Millisecond), load1(b))

	mod := filepath.Join(dir, "m")
	writeTraceBenchModule(b, mod)
	buildCache := filepath.Join(dir, "buildcache")
	build := func() time.Duration {
		bctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(bctx, goBin, "build", "-a", "-o", os.DevNull, "./...")
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "GOCACHE="+buildCache, "GOFLAGS=", "GOTOOLCHAIN=local", "GOWORK=off", "GOPROXY=off")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build -a: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	// runCycle builds back to back for one patrol cycle, the builds a
	// busy CI node runs, and returns their mean time. With patrolled, the
	// cycle starts with a round, as the agent's cycle does; the builds
	// that started while it ran are returned apart too.
	runCycle := func(patrolled bool) (mean, duringRound time.Duration) {
		start := time.Now()
		var roundEnd atomic.Int64
		var wg sync.WaitGroup
		if patrolled {
			wg.Go(func() {
				nextRound(ctx)
				roundEnd.Store(time.Now().UnixNano())
			})
		}
		var all, during []time.Duration
		for time.Since(start) < cycleLen {
			began := time.Now()
			d := build()
			all = append(all, d)
			if end := roundEnd.Load(); patrolled && (end == 0 || began.UnixNano() < end) {
				during = append(during, d)
			}
		}
		wg.Wait() // a round longer than the cycle is in the round's figure
		return meanOf(all), meanOf(during)
	}
	build() // warm the page cache and GOCACHE's directories

	pairs := 3
	if v, err := strconv.Atoi(os.Getenv("GOPATROL_BENCH_PAIRS")); err == nil && v > 0 {
		pairs = v
	}
	b.ResetTimer()
	var walls, cpus, ratios, duringRatios, loads []float64
	for i := range pairs * b.N {
		wall, used := timedRound()
		walls, cpus = append(walls, wall.Seconds()), append(cpus, used.Seconds())
		var alone, with, during time.Duration
		if i%2 == 0 {
			alone, _ = runCycle(false)
			with, during = runCycle(true)
		} else {
			with, during = runCycle(true)
			alone, _ = runCycle(false)
		}
		ratios = append(ratios, with.Seconds()/alone.Seconds())
		duringRatios = append(duringRatios, during.Seconds()/alone.Seconds())
		loads = append(loads, load1(b))
		progress("pair %d: round %v (CPU %v, the agent's own %.2fs); builds over a %v cycle: alone %v, patrolled %v (%.3f; during the round %v, %.3f); load %.1f", i,
			wall.Round(time.Millisecond), used.Round(time.Millisecond), agentCPU[len(agentCPU)-1], cycleLen, alone.Round(time.Millisecond), with.Round(time.Millisecond),
			ratios[len(ratios)-1], during.Round(time.Millisecond), duringRatios[len(duringRatios)-1], loads[len(loads)-1])
		b.Logf("pair %d: round of %d environments %v (CPU %v, the agent's own %.2fs); mean build over a %v cycle alone %v, patrolled %v (%.3f); the builds during the round %v (%.3f); load %.1f",
			i, n, wall.Round(time.Millisecond), used.Round(time.Millisecond), agentCPU[len(agentCPU)-1], cycleLen, alone.Round(time.Millisecond),
			with.Round(time.Millisecond), ratios[len(ratios)-1], during.Round(time.Millisecond), duringRatios[len(duringRatios)-1], loads[len(loads)-1])
	}
	roundWall, ratio := medianOf(walls), medianOf(ratios)
	b.ReportMetric(roundWall, "cycle-s")
	b.ReportMetric(medianOf(cpus), "cycle-cpu-s")
	b.ReportMetric(medianOf(agentCPU[1:]), "cycle-agent-cpu-s")
	b.ReportMetric(roundWall/envCycleBudget.Seconds(), "cycle/budget")
	b.ReportMetric(ratio, "build-with/alone")
	b.ReportMetric(medianOf(duringRatios), "build-during-round/alone")
	b.ReportMetric(medianOf(loads), "load1")
	if roundWall > envCycleBudget.Seconds() {
		b.Errorf("one patrol of %d environments takes %.0f s, over the %v cycle", n, roundWall, envCycleBudget)
	}
	if ratio > envBuildBudget {
		b.Errorf("builds over a patrolled cycle take %.3f times as long as alone, over the %.2f budget", ratio, envBuildBudget)
	}
}

func meanOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// mustDefaultSet is the doctor's default set, as the agent patrols
// environments with it.
func mustDefaultSet(b *testing.B) []check.Check {
	cs, err := check.Select(catalog.All(), nil, nil, false)
	if err != nil {
		b.Fatal(err)
	}
	return cs
}
