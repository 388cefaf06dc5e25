package toolchain_test

import (
	"github.com/gopatrol/gopatrol/agent/check/checktest"

	"context"
	"path/filepath"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/toolchain"
)

// BenchmarkChecks times each check of this package on the healthy machine,
// with the toolchain resolved once, as `gopatrol check` does; and all of
// them concurrently through the runner.
func BenchmarkChecks(b *testing.B) {
	w := checktest.New(b)
	checktest.WriteFile(b, filepath.Join(w.Target.Dir, "go.mod"), "module example.test/m\n\ngo 1.21\n", 0o644)
	env := w.Env()
	ctx := context.Background()
	for _, c := range toolchain.Checks() {
		b.Run(c.ID, func(b *testing.B) {
			for b.Loop() {
				if r := (check.Runner{}).Run(ctx, env, []check.Check{c})[0]; r.Status != check.Pass {
					b.Fatalf("%s: %s: %s", c.ID, r.Status, r.Summary)
				}
			}
		})
	}
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			(check.Runner{}).Run(ctx, env, toolchain.Checks())
		}
	})
}
