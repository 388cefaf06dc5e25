package bpf

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
// links are closed and re-created between short chunks, alternating which
// side goes first. On a shared machine the load changes faster than any
// run, so each side's cost is its fastest chunk (the least disturbed), and
// on/off is the ratio of the two minima; the mean per-op costs are
// reported too. The default ns/op is the whole loop and meaningless.
// Figures: docs/benchmarks.md.

const chunks = 20 // per b.N, for the syscall loops

// onOff runs work (ops operations) with and without the sensor attached,
// chunks times each per b.N, and reports per-op costs and the ratio.
func onOff(b *testing.B, ops, chunks int, cfg Config, work func(b *testing.B)) {
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
	best[0], best[1] = time.Hour, time.Hour
	for i := range b.N * chunks {
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
			work(b)
			d := time.Since(start)
			b.StopTimer()
			side := 0
			if attached {
				side = 1
				inProgs += progTime(b, s) - before
			}
			b.StartTimer()
			sum[side] += d
			best[side] = min(best[side], d)
		}
	}
	st, err := s.Stats()
	if err != nil || st.TotalDrops() != 0 {
		b.Errorf("stats %v, drops %v", err, st.Drops)
	}
	n := float64(b.N * chunks * ops)
	b.ReportMetric(float64(best[0].Nanoseconds())/float64(ops), "off-min-ns/op")
	b.ReportMetric(float64(best[1].Nanoseconds())/float64(ops), "on-min-ns/op")
	b.ReportMetric(float64(sum[0].Nanoseconds())/n, "off-ns/op")
	b.ReportMetric(float64(sum[1].Nanoseconds())/n, "on-ns/op")
	b.ReportMetric(float64(best[1])/float64(best[0]), "on/off")
	// The kernel's own accounting of the programs: machine-wide (every
	// process's syscalls run them), so an upper bound for this work.
	b.ReportMetric(float64(inProgs.Nanoseconds())/n, "bpf-ns/op")
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

	const opens, execs, connects = 5_000, 10, 200
	b.Run("openat", func(b *testing.B) {
		onOff(b, opens, chunks, Config{}, func(b *testing.B) {
			for range opens {
				fd, err := syscall.Open(file, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				syscall.Close(fd)
			}
		})
	})
	b.Run("openat-noruntime", func(b *testing.B) {
		onOff(b, opens, chunks, Config{NoRunTime: true}, func(b *testing.B) {
			for range opens {
				fd, err := syscall.Open(file, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				syscall.Close(fd)
			}
		})
	})
	// The floor: an empty program on the same tracepoint. What the kernel
	// charges for any sys_exit hook (the syscall slow path and the BPF
	// dispatch) is in this ratio already.
	b.Run("openat-emptyprog", func(b *testing.B) {
		emptyOnOff(b, opens, func(b *testing.B) {
			for range opens {
				fd, err := syscall.Open(file, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				syscall.Close(fd)
			}
		})
	})
	b.Run("execve", func(b *testing.B) {
		onOff(b, execs, chunks, Config{}, func(b *testing.B) {
			for range execs {
				if err := exec.Command("/bin/true").Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("connect", func(b *testing.B) {
		onOff(b, connects, chunks, Config{}, func(b *testing.B) {
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
		})
	})
}

// BenchmarkGoBuild: `go build -a` of a module of ten packages over a slice
// of the standard library, every package rebuilt each time.
func BenchmarkGoBuild(b *testing.B) {
	bpftest.Require(b)
	dir := b.TempDir()
	writeMidModule(b, dir)
	cache := filepath.Join(dir, "cache")
	var cpu time.Duration // user+system time of the builds, all processes
	build := func(b *testing.B) {
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before)
		cmd := exec.Command("go", "build", "-a", "-o", os.DevNull, "./...")
		cmd.Dir = dir
		cmd.Env = goEnv(dir, "GOCACHE="+cache)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go build -a: %v\n%s", err, out)
		}
		syscall.Getrusage(syscall.RUSAGE_CHILDREN, &after)
		cpu += time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	}
	build(b) // warm the page cache and GOCACHE's directories for both sides
	cpu = 0
	b.ResetTimer()
	onOff(b, 1, 1, Config{}, build)
	// The noise-robust figure: CPU time of one build (both sides).
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(2*b.N), "build-cpu-ns/op")
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
