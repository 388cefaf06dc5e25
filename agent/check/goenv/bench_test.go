package goenv_test

import (
	"github.com/gopatrol/gopatrol/agent/check/checktest"

	"context"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/goenv"
)

// BenchmarkChecks times each check of this package on the healthy machine,
// with the toolchain resolved once, as `gopatrol check` does. The first
// env.functional run may link the probe program; later ones take it from
// the build cache, which is the doctor's steady state.
func BenchmarkChecks(b *testing.B) {
	w := checktest.New(b)
	env := w.Env()
	ctx := context.Background()
	for _, c := range goenv.Checks() {
		b.Run(c.ID, func(b *testing.B) {
			for b.Loop() {
				if r := (check.Runner{}).Run(ctx, env, []check.Check{c})[0]; r.Status != check.Pass {
					b.Fatalf("%s: %s: %s", c.ID, r.Status, r.Summary)
				}
			}
		})
	}
}
