package module

import (
	"context"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
)

// BenchmarkModuleChecks times module.verify and module.vendor on a small
// vendored module, side by side with the seed's commands for 3.1 (go mod
// verify; diff of go list -mod=mod and -mod=vendor, run one after the
// other) in the same module.
func BenchmarkModuleChecks(b *testing.B) {
	w, _ := newModuleWorld(b)
	goRun(b, w, "mod", "vendor")
	env := w.Env()
	for _, c := range Checks() {
		b.Run(c.ID, func(b *testing.B) {
			for b.Loop() {
				if res := (check.Runner{}).Run(context.Background(), env, []check.Check{c})[0]; res.Status != check.Pass {
					b.Fatalf("%s: %s: %s", c.ID, res.Status, res.Summary)
				}
			}
		})
	}
	b.Run("seed-3.1-verify-and-diff", func(b *testing.B) {
		script := `go mod verify >/dev/null && diff -u <(go list -mod=mod -f '{{.Dir}}' ./...) <(go list -mod=vendor -f '{{.Dir}}' ./...) >/dev/null`
		for b.Loop() {
			cmd := w.Target.Command(context.Background(), "bash", "-c", script)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
}
