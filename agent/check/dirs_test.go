package check_test

import (
	"context"
	"github.com/gopatrol/gopatrol/internal/testgate"
	"maps"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
)

func TestToolchainDirs(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want map[string]string
	}{
		{"nil", nil, nil},
		{"gobin from gopath", map[string]string{"GOROOT": "/usr/local/go", "GOPATH": "/home/u/go:/other", "GOCACHE": "/c", "GOMODCACHE": "/m", "GOTMPDIR": ""},
			map[string]string{"GOROOT": "/usr/local/go", "GOBIN": "/home/u/go/bin", "GOCACHE": "/c", "GOMODCACHE": "/m"}},
		{"explicit gobin and tmpdir", map[string]string{"GOROOT": "/r", "GOBIN": "/b", "GOPATH": "/p", "GOTMPDIR": "/t"},
			map[string]string{"GOROOT": "/r", "GOBIN": "/b", "GOTMPDIR": "/t"}},
		{"relative values left out", map[string]string{"GOROOT": "/r", "GOCACHE": "cache", "GOPATH": "rel"},
			map[string]string{"GOROOT": "/r"}},
	}
	for _, tt := range tests {
		got := (&check.Toolchain{Env: tt.env}).Dirs()
		if !maps.Equal(got, tt.want) {
			t.Errorf("%s: Dirs() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The real go on PATH: its directories are what `go env` says.
func TestToolchainDirsRealGo(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		testgate.Missing(t, "no go on PATH: %v", err)
	}
	target, err := check.LocalTarget()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := check.ResolveToolchain(context.Background(), target, goBin)
	if err != nil {
		t.Fatal(err)
	}
	dirs := tc.Dirs()
	out, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Clean(string(out[:len(out)-1])); dirs["GOROOT"] != want {
		t.Errorf("GOROOT %q, go env says %q", dirs["GOROOT"], want)
	}
	for name, d := range dirs {
		if !filepath.IsAbs(d) {
			t.Errorf("%s = %q: not absolute", name, d)
		}
	}
	if _, ok := dirs["GOBIN"]; !ok {
		t.Errorf("no GOBIN in %v", dirs)
	}
}
