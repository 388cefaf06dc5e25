package build

import (
	"context"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// BenchmarkChecks times each check of the package through the real runner,
// with the toolchain resolved once as `gopatrol check` does. The fast ones
// count against the default set's 0.5 s; the slow set is timed as a whole,
// concurrently, as `gopatrol check --slow` runs it.
func BenchmarkChecks(b *testing.B) {
	w := checktest.New(b)
	env := w.Env()
	all := Checks()
	var slow []check.Check
	for _, c := range all {
		if c.Slow {
			slow = append(slow, c)
			continue
		}
		b.Run(c.ID, func(b *testing.B) { runBench(b, env, []check.Check{c}) })
	}
	b.Run("slow-set", func(b *testing.B) { runBench(b, env, slow) })
}

func runBench(b *testing.B, env *check.Env, cs []check.Check) {
	// One untimed run warms go's caches (the cached go run executable,
	// race-built packages), as on a machine that has built before.
	warm := check.Runner{}.Run(context.Background(), env, cs)
	for _, r := range warm {
		if r.Status != check.Pass {
			b.Fatalf("%s: %s: %s %v", r.ID, r.Status, r.Summary, r.Evidence)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		check.Runner{}.Run(context.Background(), env, cs)
	}
}

// BenchmarkCacheSample is the in-process half of build.cacheverify on the
// machine's real GOCACHE: 200 newest entries, 256 MiB at most.
func BenchmarkCacheSample(b *testing.B) {
	w := checktest.New(b)
	dir := w.Getenv("GOCACHE")
	var s cacheSample
	for b.Loop() {
		var err error
		if s, err = sampleCache(dir, sampleEntries, sampleBytes); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.Checked), "entries")
}
