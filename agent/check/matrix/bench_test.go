package matrix

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// BenchmarkDefaultSet measures the doctor's default set on every healthy
// installation of the matrix (warm cache: one untimed run first), as
// `gopatrol check` runs it: with the proofs the first run kept (docs/
// checks.md, "Kept proofs"). It also times three runs that prove afresh
// (`--fresh`), reported as fresh-ms, and it holds the slowest
// installation to the doctor's target, a run of at most 0.5 s.
func BenchmarkDefaultSet(b *testing.B) {
	const target = 500 * time.Millisecond
	releases, roots := fetchAll(b)
	cache, err := CacheDir()
	if err != nil {
		b.Fatal(err)
	}
	modCache := (&Fetcher{Cache: cache}).ModCache()
	type timing struct {
		name       string
		per, fresh time.Duration
	}
	var timings []timing
	for _, in := range installations(b, releases, roots) {
		if in.broken {
			continue
		}
		b.Run(in.name, func(b *testing.B) {
			w := in.world(b, modCache)
			w.Proofs = &check.Proofs{Dir: filepath.Join(b.TempDir(), "proofs")}
			defaultSet(b, w) // warm the build cache for this release; keep the proofs
			b.ResetTimer()
			var worst check.Result
			for b.Loop() {
				for _, r := range defaultSet(b, w) {
					if r.Duration > worst.Duration {
						worst = r
					}
				}
			}
			per := b.Elapsed() / time.Duration(b.N)
			w.Proofs = nil // --fresh
			start := time.Now()
			for range 3 {
				defaultSet(b, w)
			}
			fresh := time.Since(start) / 3
			timings = append(timings, timing{in.name, per, fresh})
			b.ReportMetric(float64(worst.Duration.Milliseconds()), "slowest-check-ms")
			b.ReportMetric(float64(fresh.Milliseconds()), "fresh-ms")
			b.Logf("%s: default set %s per run (%s proving afresh); slowest check %s (%s)", in.name, per.Round(time.Millisecond), fresh.Round(time.Millisecond), worst.ID, worst.Duration.Round(time.Millisecond))
		})
	}
	if len(timings) == 0 {
		return
	}
	slowest := slices.MaxFunc(timings, func(a, b timing) int { return int(a.per - b.per) })
	slowestFresh := slices.MaxFunc(timings, func(a, b timing) int { return int(a.fresh - b.fresh) })
	// Printed, not logged: a parent benchmark's log is not shown.
	fmt.Printf("BenchmarkDefaultSet: %d installations; slowest %s, default set %s per run; proving afresh, slowest %s, %s per run\n",
		len(timings), slowest.name, slowest.per.Round(time.Millisecond), slowestFresh.name, slowestFresh.fresh.Round(time.Millisecond))
	if slowest.per > target {
		b.Errorf("the default set takes %s per run on %s, over the %s target", slowest.per.Round(time.Millisecond), slowest.name, target)
	}
}
