package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent"
	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/catalog"
)

// Issue 17's budgets: one patrol of 50 environments within a 5-minute
// cycle, and a build beside it slowed by at most 2 %.
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
//   - cycle-s and cycle-cpu-s: the wall time and the CPU (the agent's
//     and its children's) of one round over all 50, after a first round
//     that warms the caches, against the 5-minute budget;
//   - build-with/alone: the median over alternating pairs of the wall
//     time of `go build -a` of a module of ten packages (about 80 with
//     the standard library) with rounds running beside it, over the same
//     build alone, against the 1.02 budget;
//   - load1: the one-minute load average the figures ran against.
//
// GOPATROL_BENCH_PAIRS sets the number of pairs (3), GOPATROL_BENCH_NICE
// the patrol's niceness (environments.nice, 19).
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
	nice := agent.DefaultEnvNice
	if v, err := strconv.Atoi(os.Getenv("GOPATROL_BENCH_NICE")); err == nil {
		nice = v
	}
	round := agent.NewEnvRound(mustDefaultSet(b), 2, nice, 60*time.Second)
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
	cpu := func() time.Duration {
		var self, kids syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &self)
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
		return time.Duration(self.Utime.Nano() + self.Stime.Nano() + kids.Utime.Nano() + kids.Stime.Nano())
	}
	timedRound := func() (wall, used time.Duration) {
		c0, start := cpu(), time.Now()
		round.Round(ctx)
		wall, used = time.Since(start), cpu()-c0
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
	// besides runs rounds until the build beside them ends.
	beside := func() time.Duration {
		rctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			for rctx.Err() == nil {
				round.Round(rctx)
			}
		})
		time.Sleep(2 * time.Second) // the round in full swing
		d := build()
		stop()
		wg.Wait()
		return d
	}
	build() // warm the page cache and GOCACHE's directories

	pairs := 3
	if v, err := strconv.Atoi(os.Getenv("GOPATROL_BENCH_PAIRS")); err == nil && v > 0 {
		pairs = v
	}
	b.ResetTimer()
	var walls, cpus, ratios, loads []float64
	for i := range pairs * b.N {
		wall, used := timedRound()
		walls, cpus = append(walls, wall.Seconds()), append(cpus, used.Seconds())
		var alone, with time.Duration
		if i%2 == 0 {
			alone, with = build(), beside()
		} else {
			with, alone = beside(), build()
		}
		ratios = append(ratios, with.Seconds()/alone.Seconds())
		loads = append(loads, load1(b))
		progress("pair %d: round %v (CPU %v), build alone %v, beside %v, load %.1f", i, wall.Round(time.Millisecond),
			used.Round(time.Millisecond), alone.Round(time.Millisecond), with.Round(time.Millisecond), loads[len(loads)-1])
		b.Logf("pair %d: round of %d environments %v (CPU %v); build alone %v, beside the patrol %v (%.3f); load %.1f",
			i, n, wall.Round(time.Millisecond), used.Round(time.Millisecond), alone.Round(time.Millisecond),
			with.Round(time.Millisecond), ratios[len(ratios)-1], loads[len(loads)-1])
	}
	cycle, ratio := medianOf(walls), medianOf(ratios)
	b.ReportMetric(cycle, "cycle-s")
	b.ReportMetric(medianOf(cpus), "cycle-cpu-s")
	b.ReportMetric(cycle/envCycleBudget.Seconds(), "cycle/budget")
	b.ReportMetric(ratio, "build-with/alone")
	b.ReportMetric(medianOf(loads), "load1")
	if cycle > envCycleBudget.Seconds() {
		b.Errorf("one patrol of %d environments takes %.0f s, over the %v cycle", n, cycle, envCycleBudget)
	}
	if ratio > envBuildBudget {
		b.Errorf("a build beside the patrol takes %.3f times as long as alone, over the %.2f budget", ratio, envBuildBudget)
	}
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
