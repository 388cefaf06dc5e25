package kubernetes

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/internal/testgate"
)

// TestNestedModulesTidy fails when a module under deploy/ (this one,
// deploy/grafana) has a go.mod or go.sum that `go mod tidy` would change.
// Their `replace ../..` pulls the main module's packages in, so a
// dependency the main module gains must land in their go.sum too; before
// this test, that was found by CI failing to build them.
//
// It runs offline first (GOPROXY=off): the module cache that built the
// tree holds everything tidy reads. Only when the cache lacks a module
// does it ask the configured proxy, never a host of its own.
func TestNestedModulesTidy(t *testing.T) {
	testgate.Tool(t, "go", "the Go toolchain")
	mods, err := filepath.Glob("../*/go.mod")
	if err != nil || len(mods) == 0 {
		t.Fatalf("no nested modules under deploy/ (%v): the test is looking in the wrong place", err)
	}
	for _, mod := range mods {
		dir := filepath.Dir(mod)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			out, err := tidyDiff(t, dir, "GOPROXY=off")
			if err != nil && strings.Contains(out, "GOPROXY=off") {
				t.Logf("the module cache lacks a module tidy reads; asking the configured proxy:\n%s", firstLines(out, 5))
				out, err = tidyDiff(t, dir)
			}
			if err != nil {
				t.Fatalf("deploy/%s is not tidy (%v); run `cd deploy/%s && go mod tidy` and commit:\n%s",
					filepath.Base(dir), err, filepath.Base(dir), firstLines(out, 60))
			}
		})
	}
}

// tidyDiff runs `go mod tidy -diff` in dir with env added, under a
// deadline, its process group killed at the end.
func tidyDiff(t *testing.T, dir string, env ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "mod", "tidy", "-diff")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines[n] = "…"
	}
	return strings.Join(lines, "\n")
}
