package bpftest

import (
	"testing"

	"github.com/gopatrol/gopatrol/bpf/feature"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// RequireEnv is the environment variable that turns a skip into a
// failure: the one switch of internal/testgate.
const RequireEnv = testgate.RequireEnv

// Require skips (or, with GOPATROL_REQUIRE_BPF=1, fails) t unless this
// process can load and attach gopatrol's eBPF programs.
func Require(tb testing.TB) {
	tb.Helper()
	if err := feature.Check(); err != nil {
		testgate.Missing(tb, "%v", err)
	}
}

// Need skips (or, with GOPATROL_REQUIRE_BPF=1, fails) tb when err is not
// nil: something an eBPF test needs besides the capability is missing (a
// tool on PATH, a library, a user, the compiler the objects were built
// with). `make deps` installs all of them, so on a CI machine a missing one
// is a broken machine, not a reason to pass. what names the need.
func Need(tb testing.TB, what string, err error) {
	tb.Helper()
	if err != nil {
		testgate.Missing(tb, "%s: %v (`make deps` installs what it needs)", what, err)
	}
}
