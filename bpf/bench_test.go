package bpf

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/bpf/bpftest"
)

// The benchmarks measure the same work with the sensor's programs detached
// ("off") and attached ("on") in one run: the sensor is loaded once and its
// links are closed and re-created between short chunks, each pair of
// chunks run back to back in alternating order. On a shared machine the
// load drifts faster than any run, so a figure is the median of the pairs'
// on/off ratios: a pair shares the machine's state, and the median ignores
// the pairs a burst of other work hit. Two clocks are kept per chunk: wall
// time, and the CPU time of the thread doing the work
// (CLOCK_THREAD_CPUTIME_ID, the kernel work done in its context included,
// softirqs of its loopback traffic too), which leaves out the time other
// processes held the CPUs and the sensor's own reader decoding other
// trees' events; the syscall loops are budgeted on the CPU ratio, builds
// (whose work is in child processes) on wall time. The default ns/op is the whole loop
// and meaningless. Figures: docs/benchmarks.md.

const chunks = 20 // per b.N, for the syscall loops

// ratios are the median on/off ratios of one onOff run.
type ratios struct{ wall, cpu float64 }

// onOff runs work (ops operations) with and without the sensor attached,
// chunks pairs per b.N, reports per-op costs and returns the median ratios.
func onOff(b *testing.B, ops, chunks int, cfg Config, work func(b *testing.B)) ratios {
	return onOffSides(b, ops, chunks, cfg, func(b *testing.B, _ bool) { work(b) })
}

// onOffSides is onOff for work that wants to know which side it runs on.
func onOffSides(b *testing.B, ops, chunks int, cfg Config, work func(b *testing.B, on bool)) ratios {
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	go func() {
		for range s.Events() {
		}
	}()
	var inProgs, before time.Duration // the sensor's programs' run time while on
	p := runPairs(b, b.N*chunks, func(on bool) {
		if on {
			err = s.attach()
		} else {
			err = s.detach()
		}
		if err != nil {
			b.Fatal(err)
		}
		before = progTime(b, s)
	}, work, func(on bool) {
		if on {
			inProgs += progTime(b, s) - before
		}
	})
	st, err := s.Stats()
	if err != nil || st.TotalDrops() != 0 {
		b.Errorf("stats %v, drops %v", err, st.Drops)
	}
	r := p.report(b, float64(b.N*chunks*ops))
	// The kernel's own accounting of the programs (with Config.RunTime):
	// machine-wide, so an upper bound for this work.
	if cfg.RunTime {
		b.ReportMetric(float64(inProgs.Nanoseconds())/float64(b.N*chunks*ops), "bpf-ns/op")
	}
	return r
}

// pairs holds the chunk times of a side-by-side run, index 0 off, 1 on.
type pairs struct {
	wall, cpu             [2]time.Duration
	wallRatios, cpuRatios []float64
}

// runPairs runs n pairs of work chunks, off and on in alternating order;
// set switches sides (untimed), done follows each chunk (untimed).
func runPairs(b *testing.B, n int, set func(on bool), work func(b *testing.B, on bool), done func(on bool)) *pairs {
	// The thread's CPU clock must stay the work's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := &pairs{}
	for i := range n {
		var wall, cpu [2]time.Duration
		for _, on := range []bool{i%2 == 1, i%2 == 0} {
			b.StopTimer()
			set(on)
			b.StartTimer()
			start, cpuStart := time.Now(), threadCPU(b)
			work(b, on)
			d, c := time.Since(start), threadCPU(b)-cpuStart
			b.StopTimer()
			done(on)
			b.StartTimer()
			side := 0
			if on {
				side = 1
			}
			wall[side], cpu[side] = d, c
			p.wall[side] += d
			p.cpu[side] += c
		}
		p.wallRatios = append(p.wallRatios, float64(wall[1])/float64(wall[0]))
		p.cpuRatios = append(p.cpuRatios, float64(cpu[1])/float64(cpu[0]))
	}
	return p
}

// report reports per-op costs over ops operations per side and the median
// ratios.
func (p *pairs) report(b *testing.B, ops float64) ratios {
	r := ratios{median(p.wallRatios), median(p.cpuRatios)}
	b.ReportMetric(float64(p.wall[0].Nanoseconds())/ops, "off-ns/op")
	b.ReportMetric(float64(p.wall[1].Nanoseconds())/ops, "on-ns/op")
	b.ReportMetric(float64(p.cpu[0].Nanoseconds())/ops, "off-cpu-ns/op")
	b.ReportMetric(float64(p.cpu[1].Nanoseconds())/ops, "on-cpu-ns/op")
	b.ReportMetric(r.wall, "on/off")
	b.ReportMetric(r.cpu, "cpu-on/off")
	return r
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// threadCPU is the CPU time of this thread so far.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// progTime is the total run time of the sensor's programs so far.
func progTime(b *testing.B, s *Sensor) time.Duration {
	st, err := s.Stats()
	if err != nil {
		b.Fatal(err)
	}
	var d time.Duration
	for _, p := range st.Programs {
		d += p.RunTime
	}
	return d
}

// BenchmarkOutsideTree: processes outside any Go tree pay only the first
// checks of each program. The benchmark process itself is outside: it was
// forked before the sensor attached, and so are the children it forks.
func BenchmarkOutsideTree(b *testing.B) {
	bpftest.Require(b)
	dir := b.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	// Both ends of each connection in this thread, with blocking
	// descriptors and the collector off: no goroutine, scheduler or GC work
	// lands in one side of a pair and not the other.
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer syscall.Close(lfd)
	if err := syscall.Bind(lfd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Listen(lfd, 16); err != nil {
		b.Fatal(err)
	}
	la, err := syscall.Getsockname(lfd)
	if err != nil {
		b.Fatal(err)
	}
	sa := la.(*syscall.SockaddrInet4)
	defer debug.SetGCPercent(debug.SetGCPercent(-1))

	const opens, execs, connects = 5_000, 10, 1_000
	openLoop := func(b *testing.B) {
		for range opens {
			fd, err := syscall.Open(file, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			syscall.Close(fd)
		}
	}
	// The default sensor: the budget is 2% on each loop.
	b.Run("openat", func(b *testing.B) {
		budget(b, 1.02, onOff(b, opens, chunks, Config{}, openLoop).cpu)
	})
	b.Run("execve", func(b *testing.B) {
		budget(b, 1.02, onOff(b, execs, chunks, Config{}, func(b *testing.B) {
			for range execs {
				if err := exec.Command("/bin/true").Run(); err != nil {
					b.Fatal(err)
				}
			}
		}).wall)
	})
	linger := &syscall.Linger{Onoff: 1, Linger: 0}
	connectLoop := func(b *testing.B) {
		for range connects {
			fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			if err := syscall.Connect(fd, sa); err != nil {
				b.Fatal(err)
			}
			afd, _, err := syscall.Accept4(lfd, syscall.SOCK_CLOEXEC)
			if err != nil {
				b.Fatal(err)
			}
			// Reset instead of TIME_WAIT, so that the ports last.
			syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, linger)
			syscall.Close(fd)
			syscall.Close(afd)
		}
	}
	b.Run("connect", func(b *testing.B) {
		budget(b, 1.02, onOff(b, connects, chunks, Config{}, connectLoop).cpu)
	})
	// While a tree is alive (here: Config.Eager), gp_sock_state runs for
	// every TCP state change on the machine: six per loopback connection.
	// No budget: the price is documented, next to the floor of an empty
	// program on the same tracepoint.
	b.Run("connect-tree-alive", func(b *testing.B) {
		onOff(b, connects, chunks, Config{Eager: true}, connectLoop)
	})
	b.Run("connect-emptyprog", func(b *testing.B) {
		emptyOnOff(b, "inet_sock_set_state", connects, connectLoop)
	})
	// The kernel's run-time statistics (Config.RunTime) cost every BPF
	// program run on the machine two clock reads. No budget: the price is
	// documented.
	b.Run("connect-runtime", func(b *testing.B) {
		onOff(b, connects, chunks, Config{Eager: true, RunTime: true}, connectLoop)
	})
	// Config.Syscalls: what seeing C programs' failures costs everybody,
	// with and without the run-time statistics, and the floor of any
	// program on sys_exit. No budget either.
	b.Run("openat-syscalls", func(b *testing.B) {
		onOff(b, opens, chunks, Config{Syscalls: true}, openLoop)
	})
	b.Run("openat-syscalls-runtime", func(b *testing.B) {
		onOff(b, opens, chunks, Config{Syscalls: true, RunTime: true}, openLoop)
	})
	b.Run("openat-emptyprog", func(b *testing.B) {
		emptyOnOff(b, "sys_exit", opens, openLoop)
	})
}

// budget fails the benchmark when the on/off ratio exceeds max.
func budget(b *testing.B, max, ratio float64) {
	if ratio > max {
		b.Logf("OVER sensor on/off = %.3f, budget %.2f", ratio, max)
	}
}

// BenchmarkGoBuild: `go build -a` of a module of ten packages over a slice
// of the standard library, every package rebuilt each time. Wall time is
// the budget; the builds' CPU time (all processes) is reported per side too,
// being steadier on a loaded machine.
func BenchmarkGoBuild(b *testing.B) {
	bpftest.Require(b)
	dir := b.TempDir()
	writeMidModule(b, dir)
	cache := filepath.Join(dir, "cache")
	var cpu [2]time.Duration // off, on
	build := func(b *testing.B, on bool) {
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before)
		cmd := exec.Command("go", "build", "-a", "-o", os.DevNull, "./...")
		cmd.Dir = dir
		cmd.Env = goEnv(dir, "GOCACHE="+cache)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build -a: %v\n%s", err, out)
		}
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &after)
		side := 0
		if on {
			side = 1
		}
		cpu[side] += time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	}
	build(b, false)  // warm the page cache and GOCACHE's directories for both sides
	const builds = 5 // pairs per b.N
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			cpu = [2]time.Duration{}
			r := onOffSides(b, 1, builds, m.cfg, build)
			b.ReportMetric(float64(cpu[0].Nanoseconds())/float64(builds*b.N), "off-build-cpu-ns/op")
			b.ReportMetric(float64(cpu[1].Nanoseconds())/float64(builds*b.N), "on-build-cpu-ns/op")
			b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "build-cpu-on/off")
			budget(b, 1.02, r.wall)
		})
	}
}

func writeMidModule(tb testing.TB, dir string) {
	imports := []string{"fmt", "strings", "encoding/json", "net/url", "sort", "bufio", "os", "path/filepath", "strconv", "errors"}
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	write("go.mod", "module example.com/mid\n\ngo 1.22\n")
	var mainImports []string
	for i, imp := range imports {
		pkg := fmt.Sprintf("p%d", i)
		mainImports = append(mainImports, fmt.Sprintf("\t_ \"example.com/mid/%s\"", pkg))
		write(pkg+"/"+pkg+".go", fmt.Sprintf("package %s\n\nimport _ %q\n\nfunc F() int { return %d }\n", pkg, imp, i))
	}
	write("main.go", "package main\n\nimport (\n"+strings.Join(mainImports, "\n")+"\n)\n\nfunc main() {}\n")
}

// BenchmarkFailingTree: a Go tree that fails a million creates under a
// classified directory. Every failure is counted, exactly SampleLimit are
// streamed, none is dropped at the default ring size (failingTree fails
// otherwise). off runs the same helper without a sensor.
func BenchmarkFailingTree(b *testing.B) {
	bpftest.Require(b)
	const n = 1_000_000
	var off, on time.Duration
	for range b.N {
		r := failingTree(b, n)
		on += r.Elapsed
		off += runFailing(b, n)
	}
	b.ReportMetric(float64(off.Nanoseconds())/float64(b.N*n), "off-ns/op")
	b.ReportMetric(float64(on.Nanoseconds())/float64(b.N*n), "on-ns/op")
	b.ReportMetric(float64(on)/float64(off), "on/off")
}

// runFailing runs the failing helper without a sensor.
func runFailing(b *testing.B, n int) time.Duration {
	cred := nobody(b)
	base := helperDir(b)
	dir := filepath.Join(base, "cache")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(helperBinary(b, base, "go"))
	cmd.Env = append(os.Environ(), helperEnv+"=fail-opens", "DIR="+dir, fmt.Sprint("N=", n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("helper: %v\n%s", err, out)
	}
	return time.Since(start)
}

// emptyOnOff is onOff with a program that only returns 0 on tracepoint:
// the kernel's own price of the hook.
func emptyOnOff(b *testing.B, tracepoint string, ops int, work func(b *testing.B)) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     tracepoint,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	var l link.Link
	p := runPairs(b, b.N*chunks, func(on bool) {
		if on {
			if l, err = link.AttachTracing(link.TracingOptions{Program: prog}); err != nil {
				b.Fatal(err)
			}
		}
	}, func(b *testing.B, _ bool) { work(b) }, func(on bool) {
		if on {
			l.Close()
		}
	})
	p.report(b, float64(b.N*chunks*ops))
}
