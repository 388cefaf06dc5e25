package testgate

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// RequireEnv is the environment variable that turns a skip for something
// missing into a failure. Its name predates this package: the eBPF tests
// were the first to need it.
const RequireEnv = "GOPATROL_REQUIRE_BPF"

// Required reports whether missing capabilities fail tests here.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Missing stops tb because the machine lacks what the reason says: a
// skip, or a failure when Required.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	reason := fmt.Sprintf(format, args...)
	if Required() {
		tb.Fatalf("%s (%s=1: this machine must be able to run it)", reason, RequireEnv)
	}
	tb.Skipf("%s (set %s=1 to fail instead of skipping)", reason, RequireEnv)
}

// Root stops tb unless the process runs as root.
func Root(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Missing(tb, "needs root to %s", why)
	}
}

// Tool returns the path of a program on PATH, or stops tb naming the
// Debian package that `make deps` installs for it.
func Tool(tb testing.TB, name, debPackage string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(tb, "%s not installed (make deps installs the %s package)", name, debPackage)
	}
	return p
}

// Slow skips tb under `go test -short`, for a quick local run, saying
// what the test would have cost. Where tests are Required (CI), -short
// is ignored: the test runs, so nothing can skip there.
func Slow(tb testing.TB, cost string) {
	tb.Helper()
	if testing.Short() && !Required() {
		tb.Skipf("-short: %s (runs without -short, and always with %s=1)", cost, RequireEnv)
	}
}
