package patrol

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchRules writes n local rules over the agent's instruments (metric
// rules: no network, so the figure is the engine's own cost), half with
// static thresholds, half with ewma baselines, in 10 groups and 10 files.
func benchRules(b *testing.B, n int) (string, *instruments) {
	b.Helper()
	dir := b.TempDir()
	files := make([]strings.Builder, 10)
	ins := &instruments{}
	for i := range n {
		th := "gt(100)"
		if i%2 == 1 {
			th = "ewma(alpha=0.2,k=3)"
		}
		fmt.Fprintf(&files[i%10], `- name: r%d
  type: metric
  query: 'increase(gopatrol.file_access.failures{gopatrol.file.class="c%d",error.type="EACCES"}[5m])'
  threshold: "%s"
  labels: {service: s%d, region: eu-west-1}
  every: 30s
`, i, i%200, th, i%10)
	}
	for i := range 200 {
		ins.pts = append(ins.pts, MetricPoint{Name: "gopatrol.file_access.failures",
			Attrs: map[string]string{"gopatrol.file.class": fmt.Sprint("c", i), "error.type": "EACCES"}})
	}
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%d.yaml", i)), []byte(files[i].String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir, ins
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEvaluate1000 is one patrol cycle of 1,000 local rules with the
// state saved to disk (target: ≤ 1 s of CPU per cycle).
func BenchmarkEvaluate1000(b *testing.B) {
	dir, ins := benchRules(b, 1000)
	clk := &clock{t: time.Date(2026, 6, 12, 0, 0, 0, 0, time.UTC)}
	e, err := New(Config{StateDir: b.TempDir(), Metrics: ins, Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Load(dir); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	step := func(i int) {
		ins.mu.Lock()
		for j := range ins.pts {
			ins.pts[j].Value += float64((i + j) % 7)
		}
		ins.mu.Unlock()
		if _, err := e.EvaluateAll(ctx); err != nil {
			b.Fatal(err)
		}
		clk.Add(30 * time.Second)
	}
	for i := range 20 { // windows full and baselines warm
		step(i)
	}
	cpu := cpuTime()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		step(i)
	}
	perCycle := (cpuTime() - cpu) / time.Duration(b.N)
	b.ReportMetric(float64(perCycle)/1e6, "cpu-ms/cycle")
	if perCycle > time.Second {
		b.Fatalf("a cycle of 1,000 rules took %s of CPU, the target is ≤ 1s", perCycle)
	}
}

// BenchmarkReload1000 reads, validates and atomically swaps in a set of
// 1,000 rules (target: ≤ 1 s).
func BenchmarkReload1000(b *testing.B) {
	dir, ins := benchRules(b, 1000)
	e, err := New(Config{StateDir: b.TempDir(), Metrics: ins})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for b.Loop() {
		if err := e.Load(dir); err != nil {
			b.Fatal(err)
		}
	}
	if per := time.Since(start) / time.Duration(b.N); per > time.Second {
		b.Fatalf("a reload of 1,000 rules took %s, the target is ≤ 1s", per)
	}
}

// BenchmarkMemoryPerSeries reports the heap an engine holds per rule and
// label set once every series has a baseline and a full window (target:
// ≤ 10 KiB).
func BenchmarkMemoryPerSeries(b *testing.B) {
	const n = 1000
	dir, ins := benchRules(b, n)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		clk := &clock{t: time.Date(2026, 6, 12, 0, 0, 0, 0, time.UTC)}
		e, err := New(Config{Metrics: ins, Now: clk.Now})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Load(dir); err != nil {
			b.Fatal(err)
		}
		for range 30 {
			if _, err := e.EvaluateAll(context.Background()); err != nil {
				b.Fatal(err)
			}
			clk.Add(30 * time.Second)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(len(e.state.Series))
		b.ReportMetric(per, "B/series")
		if per > 10<<10 {
			b.Fatalf("%.0f B per rule and label set, the target is ≤ 10 KiB", per)
		}
		runtime.KeepAlive(e)
	}
}
