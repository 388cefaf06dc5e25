package inventory_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/inventory"
)

// cpuTime is this process's user+system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// buildEnviron is a CI job's environment: the Go variables among some
// sixty others, 6 KiB in all.
func buildEnviron() []string {
	env := []string{"PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/home/ci/go/bin",
		"HOME=/home/ci", "GOFLAGS=-mod=readonly -trimpath", "GOCACHE=/var/cache/ci/go-build", "GOMODCACHE=/var/cache/ci/mod",
		"GOPROXY=https://proxy.internal.test,direct", "GOPRIVATE=*.internal.test", "CGO_ENABLED=0", "GOTOOLCHAIN=local"}
	for i := range 60 {
		env = append(env, fmt.Sprintf("CI_JOB_VARIABLE_%02d=%s", i, strings.Repeat("x", 80)))
	}
	return env
}

// BenchmarkRecord is what one go invocation costs the agent: making its
// environment from what the sensors streamed at its exec (the variables,
// executable, working directory and namespace) and /proc (its cgroup,
// GOROOT's VERSION, the module root), and recording it. Budget: 100 µs of
// CPU (issue 17); the benchmark fails over it. BenchmarkRecord/proc is
// the same go command read from /proc alone, as `Capture` does for a
// process seen some other way.
func BenchmarkRecord(b *testing.B) {
	goroot := fakeRoot(b, b.TempDir(), "go1.26.8")
	mod := b.TempDir()
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module m\n"), 0o644)
	sub := filepath.Join(mod, "a", "b")
	os.MkdirAll(sub, 0o755)
	cmd := startB(b, sub, buildEnviron(), filepath.Join(goroot, "bin", "go"), "60")
	pid := cmd.Process.Pid
	time.Sleep(50 * time.Millisecond) // the exec is done
	var ns syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/mnt", &ns); err != nil {
		b.Fatal(err)
	}
	environ := []byte(strings.Join(buildEnviron(), "\x00") + "\x00")
	for _, bc := range []struct {
		name    string
		capture func(c *inventory.Capturer) (inventory.Env, error)
	}{
		{"streamed", func(c *inventory.Capturer) (inventory.Env, error) {
			// The sensor hands each event its own copy, which Capture clears.
			return c.CaptureExec(inventory.Exec{PID: pid, PPID: os.Getpid(), UID: 1000, MountNS: ns.Ino,
				Go: filepath.Join(goroot, "bin", "go"), Cwd: sub, Environ: bytes.Clone(environ)})
		}},
		{"proc", func(c *inventory.Capturer) (inventory.Env, error) { return c.Capture(pid, 1000) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var c inventory.Capturer
			inv := inventory.New(inventory.Config{})
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime(b)
			for range b.N {
				env, err := bc.capture(&c)
				if err != nil {
					b.Fatal(err)
				}
				inv.Observe(env, time.Now(), pid)
			}
			perOp := (cpuTime(b) - start) / time.Duration(b.N)
			b.ReportMetric(float64(perOp.Nanoseconds())/1e3, "cpu-µs/op")
			if b.N >= 100 && perOp > 100*time.Microsecond {
				b.Errorf("recording an environment took %v of CPU, over the 100 µs budget", perOp)
			}
		})
	}
}

// BenchmarkInventory1000 is the memory of a full inventory: 1,000
// environments with their variables and a patrol result each.
func BenchmarkInventory1000(b *testing.B) {
	var perInv float64
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		inv := inventory.New(inventory.Config{Limit: 1000})
		now := time.Now()
		for i := range 1000 {
			e := inventory.Env{Go: "/usr/local/go/bin/go", GOROOT: "/usr/local/go", Version: "go1.26.8", UID: uint32(1000 + i),
				Module: fmt.Sprintf("/builds/group/project-%d", i), Vars: map[string]string{}}
			for _, kv := range buildEnviron()[:9] {
				k, v, _ := strings.Cut(kv, "=")
				e.Vars[k] = v
			}
			id, _ := inv.Observe(e, now, 1000+i)
			inv.SetPatrol(id, inventory.Result{At: now, Outcome: inventory.OutcomeFail, Root: "/proc/1234/root",
				Problems: []inventory.Problem{{ID: "gocache.writable", Status: "fail", Summary: strings.Repeat("s", 120)}}})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perInv = float64(after.HeapAlloc) - float64(before.HeapAlloc)
		runtime.KeepAlive(inv)
	}
	b.ReportMetric(perInv/(1<<20), "MiB/1000-envs")
	if perInv > 8<<20 {
		b.Errorf("1,000 environments take %.1f MiB, over the 8 MiB share of the agent's 48 MiB budget", perInv/(1<<20))
	}
}
