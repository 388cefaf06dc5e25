package matrix

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// BenchmarkDefaultSet measures the doctor's default set on every healthy
// installation of the matrix (warm cache: one untimed run first), and
// logs the slowest, which is the one the speed targets must hold on.
func BenchmarkDefaultSet(b *testing.B) {
	releases, roots := fetchAll(b)
	cache, err := CacheDir()
	if err != nil {
		b.Fatal(err)
	}
	modCache := (&Fetcher{Cache: cache}).ModCache()
	type timing struct {
		name string
		per  time.Duration
	}
	var timings []timing
	for _, in := range installations(b, releases, roots) {
		if in.broken {
			continue
		}
		b.Run(in.name, func(b *testing.B) {
			w := in.world(b, modCache)
			defaultSet(b, w) // warm the build cache for this release
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
			timings = append(timings, timing{in.name, per})
			b.ReportMetric(float64(worst.Duration.Milliseconds()), "slowest-check-ms")
			b.Logf("%s: default set %s per run; slowest check %s (%s)", in.name, per.Round(time.Millisecond), worst.ID, worst.Duration.Round(time.Millisecond))
		})
	}
	if len(timings) == 0 {
		return
	}
	slowest := slices.MaxFunc(timings, func(a, b timing) int { return int(a.per - b.per) })
	// Printed, not logged: a parent benchmark's log is not shown.
	fmt.Printf("BenchmarkDefaultSet: slowest installation %s, default set %s per run\n", slowest.name, slowest.per.Round(time.Millisecond))
}
