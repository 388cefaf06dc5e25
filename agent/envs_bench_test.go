package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
//   - cycle-s, cycle-cpu-s: the steady state, rounds one 5-minute cycle
//     apart on the proofs' clock (so that proofs fall due as in the
//     agent) over the longest a proof stands (4 hours, 48 rounds): the
//     median wall time, and the mean CPU
//     (the agent's and its children's; cycle-agent-cpu-s the agent's own,
//     which runs at the agent's priority);
//   - build-s-lost/patrol-cpu-s: what a CPU-second of patrol costs the
//     builds beside it, in seconds of their wall time. A CI node's builds
//     (`go build -a` of a module of ten packages, about 80 with the
//     standard library), back to back, beside rounds run back to back
//     (the patrol at full duty, where its cost stands out of this
//     machine's noise) against the same builds alone, in ABBA pairs; the
//     median over pairs. build-beside-rounds/alone is that slowdown;
//   - build-with/alone: builds through a patrolled cycle against builds
//     alone, from the two: one cycle of builds loses cost × cycle-cpu-s of
//     wall time. The 2 % budget fails over 1.02.
//
// Why not time builds through a patrolled 5-minute cycle against an
// unpatrolled one directly: the steady round takes 1-3 % of a cycle, and
// this machine's speed moves by more than that between two cycles
// (builds alone 15.0-16.3 s minutes apart), so three such pairs gave
// ×0.98 to ×1.11 at random (docs/benchmarks.md).
//
// GOPATROL_BENCH_ENVS sets the number of environments (50),
// GOPATROL_BENCH_PAIRS the pairs (3), GOPATROL_BENCH_BUILDS the builds per
// block (4), GOPATROL_BENCH_NICE the patrol's niceness
// (environments.nice, 19), GOPATROL_BENCH_IDLE its SCHED_IDLE
// (environments.sched_idle, true), GOPATROL_BENCH_CYCLE the cycle
// (environments.every, 5m).
func BenchmarkPatrol50Environments(b *testing.B) {
	n, pairs, buildsPerBlock := benchInt("GOPATROL_BENCH_ENVS", 50), benchInt("GOPATROL_BENCH_PAIRS", 3), benchInt("GOPATROL_BENCH_BUILDS", 4)
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
	if v, err := time.ParseDuration(os.Getenv("GOPATROL_BENCH_CYCLE")); err == nil && v > 0 {
		cycle = v
	}
	// The longest a proof stands, in cycles: every proof of the first
	// round falls due within it, its toolchain's witnesses many times.
	steadyRounds := int(check.WitnessedFor * check.DefaultProofTTL / cycle)
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
	// build is one CI build, and the CPU it took (go build and the
	// compilers it waited for).
	build := func() (wall, used time.Duration) {
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
		wall = time.Since(start)
		return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	// block builds back to back, alone or beside rounds run back to back
	// (the proofs' clock a cycle on per round, so that they re-prove at
	// the agent's rate), and returns the builds' times and the patrol's
	// CPU while they ran: the bench's and its children's, less the
	// builds' own. The round still running when the last build ends is
	// cancelled, so that only CPU spent beside a build counts.
	block := func(patrolled bool) (walls []time.Duration, patrolCPU time.Duration, rounds int) {
		s0, k0 := cpu()
		rctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		if patrolled {
			wg.Go(func() {
				for rctx.Err() == nil {
					nextRound(rctx)
					if rctx.Err() == nil {
						rounds++
					}
				}
			})
		}
		var builds time.Duration
		for range buildsPerBlock {
			w, used := build()
			walls, builds = append(walls, w), builds+used
		}
		stop()
		wg.Wait()
		s1, k1 := cpu()
		return walls, s1 - s0 + k1 - k0 - builds, rounds
	}

	// The steady state: rounds alone, one cycle apart on the proofs'
	// clock, over the longest a proof stands, so that their mean carries
	// the re-proofs as the agent's rounds do.
	var walls, cpus []float64
	for range steadyRounds {
		wall, used := timedRound()
		walls, cpus = append(walls, wall.Seconds()), append(cpus, used.Seconds())
	}
	roundCPU := meanOf64(cpus)
	progress("%d steady rounds: wall median %.1fs, CPU mean %.1fs (min %.1fs, max %.1fs), the agent's own mean %.2fs",
		steadyRounds, medianOf(slices.Clone(walls)), roundCPU, slices.Min(cpus), slices.Max(cpus), meanOf64(agentCPU[1:]))

	build() // warm the page cache and GOCACHE's directories
	// The cost of the patrol's CPU to the builds beside it, measured
	// where it stands out of this machine's noise: blocks of builds beside
	// rounds run back to back (the patrol at full duty) against blocks
	// alone, in ABBA order against drift. cost is the build wall time lost
	// per CPU-second of patrol.
	var costs, beside, loads []float64
	for i := range pairs * b.N {
		var alone, with []time.Duration
		var patrolCPU time.Duration
		var rounds int
		if i%2 == 0 {
			alone, _, _ = block(false)
			with, patrolCPU, rounds = block(true)
		} else {
			with, patrolCPU, rounds = block(true)
			alone, _, _ = block(false)
		}
		lost := sumOf(with) - time.Duration(len(with))*meanOf(alone)
		costs = append(costs, lost.Seconds()/patrolCPU.Seconds())
		beside = append(beside, meanOf(with).Seconds()/meanOf(alone).Seconds())
		loads = append(loads, load1(b))
		progress("pair %d: builds alone %v %v, beside %d rounds %v %v (×%.3f); patrol CPU %v, build time lost %v: %.3f s per patrol CPU-second; load %.1f",
			i, meanOf(alone).Round(time.Millisecond), alone, rounds, meanOf(with).Round(time.Millisecond), with, beside[len(beside)-1],
			patrolCPU.Round(time.Millisecond), lost.Round(time.Millisecond), costs[len(costs)-1], loads[len(loads)-1])
		b.Logf("pair %d: mean build alone %v, beside rounds back to back %v (×%.3f, %d rounds); patrol CPU %v; build time lost %v: %.3f s per patrol CPU-second; load %.1f",
			i, meanOf(alone).Round(time.Millisecond), meanOf(with).Round(time.Millisecond), beside[len(beside)-1], rounds,
			patrolCPU.Round(time.Millisecond), lost.Round(time.Millisecond), costs[len(costs)-1], loads[len(loads)-1])
	}
	// A CI node building back to back through one cycle loses cost ×
	// roundCPU of build time to the cycle's round: the builds beside the
	// patrol take that much longer than alone.
	cost := max(medianOf(costs), 0)
	lostPerCycle := cost * roundCPU
	ratio := cycle.Seconds() / (cycle.Seconds() - lostPerCycle)
	roundWall := medianOf(walls)
	b.ReportMetric(roundWall, "cycle-s")
	b.ReportMetric(roundCPU, "cycle-cpu-s")
	b.ReportMetric(meanOf64(agentCPU[1:]), "cycle-agent-cpu-s")
	b.ReportMetric(roundWall/envCycleBudget.Seconds(), "cycle/budget")
	b.ReportMetric(medianOf(beside), "build-beside-rounds/alone")
	b.ReportMetric(cost, "build-s-lost/patrol-cpu-s")
	b.ReportMetric(ratio, "build-with/alone")
	b.ReportMetric(medianOf(loads), "load1")
	b.Logf("cycle: a round of %.1f s of CPU costs builds beside it %.2f s of a %v cycle: ×%.4f", roundCPU, lostPerCycle, cycle, ratio)
	if roundWall > envCycleBudget.Seconds() {
		b.Errorf("one patrol of %d environments takes %.0f s, over the %v cycle", n, roundWall, envCycleBudget)
	}
	if ratio > envBuildBudget {
		b.Errorf("builds beside a patrolled cycle take %.3f times as long as alone, over the %.2f budget", ratio, envBuildBudget)
	}
}

// benchInt is the positive integer in the environment variable key, else
// def.
func benchInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil && v > 0 {
		return v
	}
	return def
}

func sumOf(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum
}

func meanOf64(v []float64) float64 {
	var sum float64
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

func meanOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return sumOf(ds) / time.Duration(len(ds))
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
