package bpf

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/gopatrol/gopatrol/bpf/bpftest"
)

// The benchmarks measure the same work with the sensor's programs detached
// ("off") and attached ("on") in one run: the sensor is loaded once and its
// links are closed and re-created between short chunks, each pair of
// chunks run back to back in alternating order. On a shared machine the
// load drifts faster than any run, so the figure is the median of the
// pairs' on/off ratios: a pair shares the machine's state, and the median
// ignores the pairs a burst of other work hit. The fastest chunk of each
// side and the mean per-op costs are reported too. The default ns/op is the
// whole loop and meaningless. Figures: docs/benchmarks.md.

const chunks = 20 // per b.N, for the syscall loops

// onOff runs work (ops operations) with and without the sensor attached,
// chunks pairs per b.N, reports per-op costs and returns the median on/off
// ratio of the pairs.
func onOff(b *testing.B, ops, chunks int, cfg Config, work func(b *testing.B)) float64 {
	return onOffSides(b, ops, chunks, cfg, func(b *testing.B, _ bool) { work(b) })
}

// onOffSides is onOff for work that wants to know which side it runs on.
func onOffSides(b *testing.B, ops, chunks int, cfg Config, work func(b *testing.B, on bool)) float64 {
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	go func() {
		for range s.Events() {
		}
	}()
	var sum, best [2]time.Duration // off, on
	var inProgs time.Duration      // the sensor's programs' run time while on
	var ratios []float64
	best[0], best[1] = time.Hour, time.Hour
	for i := range b.N * chunks {
		var pair [2]time.Duration
		for _, attached := range []bool{i%2 == 1, i%2 == 0} {
			b.StopTimer()
			if attached {
				err = s.attach()
			} else {
				err = s.detach()
			}
			if err != nil {
				b.Fatal(err)
			}
			before := progTime(b, s)
			b.StartTimer()
			start := time.Now()
			work(b, attached)
			d := time.Since(start)
			b.StopTimer()
			side := 0
			if attached {
				side = 1
				inProgs += progTime(b, s) - before
			}
			b.StartTimer()
			pair[side] = d
			sum[side] += d
			best[side] = min(best[side], d)
		}
		ratios = append(ratios, float64(pair[1])/float64(pair[0]))
	}
	st, err := s.Stats()
	if err != nil || st.TotalDrops() != 0 {
		b.Errorf("stats %v, drops %v", err, st.Drops)
	}
	slices.Sort(ratios)
	ratio := ratios[len(ratios)/2]
	n := float64(b.N * chunks * ops)
	b.ReportMetric(float64(best[0].Nanoseconds())/float64(ops), "off-min-ns/op")
	b.ReportMetric(float64(best[1].Nanoseconds())/float64(ops), "on-min-ns/op")
	b.ReportMetric(float64(sum[0].Nanoseconds())/n, "off-ns/op")
	b.ReportMetric(float64(sum[1].Nanoseconds())/n, "on-ns/op")
	b.ReportMetric(ratio, "on/off")
	// The kernel's own accounting of the programs (with Config.RunTime):
	// machine-wide, so an upper bound for this work.
	if cfg.RunTime {
		b.ReportMetric(float64(inProgs.Nanoseconds())/n, "bpf-ns/op")
	}
	return ratio
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	sa := &syscall.SockaddrInet4{Port: addr.Port, Addr: [4]byte{127, 0, 0, 1}}

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
		budget(b, 1.02, onOff(b, opens, chunks, Config{}, openLoop))
	})
	b.Run("execve", func(b *testing.B) {
		budget(b, 1.02, onOff(b, execs, chunks, Config{}, func(b *testing.B) {
			for range execs {
				if err := exec.Command("/bin/true").Run(); err != nil {
					b.Fatal(err)
				}
			}
		}))
	})
	connectLoop := func(b *testing.B) {
		for range connects {
			fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			if err := syscall.Connect(fd, sa); err != nil {
				b.Fatal(err)
			}
			// Reset instead of TIME_WAIT, so that the ports last.
			syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
			syscall.Close(fd)
		}
	}
	b.Run("connect", func(b *testing.B) {
		budget(b, 1.02, onOff(b, connects, chunks, Config{}, connectLoop))
	})
	// The kernel's run-time statistics (Config.RunTime) cost every BPF
	// program run on the machine two clock reads. No budget: the price is
	// documented.
	b.Run("connect-runtime", func(b *testing.B) {
		onOff(b, connects, chunks, Config{RunTime: true}, connectLoop)
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
		emptyOnOff(b, opens, openLoop)
	})
}

// budget fails the benchmark when the on/off ratio exceeds max.
func budget(b *testing.B, max, ratio float64) {
	if ratio > max {
		b.Errorf("sensor on/off = %.3f, budget %.2f", ratio, max)
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
	build(b, false) // warm the page cache and GOCACHE's directories for both sides
	const pairs = 3
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			cpu = [2]time.Duration{}
			ratio := onOffSides(b, 1, pairs, m.cfg, build)
			b.ReportMetric(float64(cpu[0].Nanoseconds())/float64(pairs*b.N), "off-cpu-ns/op")
			b.ReportMetric(float64(cpu[1].Nanoseconds())/float64(pairs*b.N), "on-cpu-ns/op")
			b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "cpu-on/off")
			budget(b, 1.02, ratio)
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

// emptyOnOff is onOff with a program that only returns 0 on sys_exit.
func emptyOnOff(b *testing.B, ops int, work func(b *testing.B)) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     "sys_exit",
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	var best [2]time.Duration
	best[0], best[1] = time.Hour, time.Hour
	for i := range b.N * chunks {
		for _, attached := range []bool{i%2 == 1, i%2 == 0} {
			var l link.Link
			if attached {
				if l, err = link.AttachTracing(link.TracingOptions{Program: prog}); err != nil {
					b.Fatal(err)
				}
			}
			start := time.Now()
			work(b)
			d := time.Since(start)
			side := 0
			if attached {
				side = 1
				l.Close()
			}
			best[side] = min(best[side], d)
		}
	}
	b.ReportMetric(float64(best[0].Nanoseconds())/float64(ops), "off-min-ns/op")
	b.ReportMetric(float64(best[1].Nanoseconds())/float64(ops), "on-min-ns/op")
	b.ReportMetric(float64(best[1])/float64(best[0]), "on/off")
}
