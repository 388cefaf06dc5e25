package goenv_test

import (
	"path/filepath"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// newWorld is checktest.New with Go telemetry off in the world's HOME: the
// go command otherwise leaves a background child that writes
// HOME/.config/go/telemetry after the world has been removed.
func newWorld(t testing.TB) *checktest.World {
	t.Helper()
	w := checktest.New(t)
	writeFile(t, filepath.Join(w.Getenv("HOME"), ".config", "go", "telemetry", "mode"), "off", 0o644)
	return w
}
