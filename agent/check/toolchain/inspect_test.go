package toolchain

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// The GOROOT cmd/link writes into a binary is read back from its symbols:
// a test binary built by go test has it; the -trimpath release go has none.
func TestLinkedGOROOT(t *testing.T) {
	local := &check.Target{Root: "/"}
	realGo := checktest.RealGo(t)
	wantRoot := filepath.Dir(filepath.Dir(realGo))

	// go test strips the test binary; build one that keeps its symbols.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"runtime\"\n\n// Like cmd/go, use runtime.GOROOT so the linker keeps defaultGOROOT.\nfunc main() { println(runtime.GOROOT()) }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog")
	cmd := exec.Command(realGo, "build", "-o", bin, "main.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOTOOLCHAIN=local", "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	got, err := linkedGOROOT(local, bin)
	if err != nil || !sameDir(local, got, wantRoot) {
		t.Errorf("linkedGOROOT(%s) = %q, %v; want %s", bin, got, err, wantRoot)
	}
	if bi := readBinInfo(local, realGo); bi.IsGo() {
		if got, err := linkedGOROOT(local, realGo); !errors.Is(err, errNoDefault) && !sameDir(local, got, wantRoot) {
			t.Errorf("linkedGOROOT(%s) = %q, %v; want none or %s", realGo, got, err, wantRoot)
		}
	}
}
