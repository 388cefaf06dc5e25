// Package bpftest gates tests that load real eBPF programs.
//
// Where the machine cannot load them (not root, no BTF, no ring buffer) the
// test is skipped with the reason, except when GOPATROL_REQUIRE_BPF=1 (CI
// sets it): then the same reason fails the test, so CI never passes by
// skipping the sensors.
package bpftest

import (
	"os"
	"testing"

	"github.com/gopatrol/gopatrol/bpf/feature"
)

// RequireEnv is the environment variable that turns a skip into a failure.
const RequireEnv = "GOPATROL_REQUIRE_BPF"

// Require skips (or, with GOPATROL_REQUIRE_BPF=1, fails) t unless this
// process can load and attach gopatrol's eBPF programs.
func Require(tb testing.TB) {
	tb.Helper()
	err := feature.Check()
	if err == nil {
		return
	}
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatalf("%v (%s=1: eBPF tests must run here)", err, RequireEnv)
	}
	tb.Skipf("%v (set %s=1 to fail instead of skipping)", err, RequireEnv)
}
