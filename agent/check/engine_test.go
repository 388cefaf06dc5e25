package check_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// fakeGo puts an executable script named go first on a PATH of its own
// and returns the target that sees it.
func fakeGo(t *testing.T, body string) (*check.Target, string) {
	t.Helper()
	local, err := check.LocalTarget()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	goBin := filepath.Join(dir, "go")
	checktest.WriteFile(t, goBin, "#!/bin/sh\n"+body, 0o755)
	return local.WithEnv("PATH=" + dir + ":/usr/bin:/bin"), goBin
}

// waitGone waits until pid no longer runs (or is a zombie), failing the
// test if it outlives limit.
func waitGone(t *testing.T, pidFile string, limit time.Duration) {
	t.Helper()
	var pid string
	deadline := time.Now().Add(limit)
	for pid == "" {
		b, _ := os.ReadFile(pidFile)
		pid = strings.TrimSpace(string(b))
		if pid == "" && time.Now().After(deadline) {
			t.Fatalf("no pid in %s", pidFile)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %s still runs", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A go on PATH that never answers is what the doctor exists to diagnose:
// resolving the toolchain must end with a diagnosis naming the script,
// not hang, and the script's own children must die with it.
func TestResolveToolchainHungGoIsADiagnosis(t *testing.T) {
	defer check.SetGoEnvTimeout(500 * time.Millisecond)()
	pidFile := filepath.Join(t.TempDir(), "pid")
	target, goBin := fakeGo(t, "sleep 300 &\necho $! > "+pidFile+"\nwait\n")
	done := make(chan struct{})
	var tc *check.Toolchain
	var err error
	go func() {
		defer close(done)
		tc, err = check.ResolveToolchain(context.Background(), target, "")
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ResolveToolchain did not return for a hanging go")
	}
	if err != nil || tc.Err == nil {
		t.Fatalf("err %v, tc.Err %v: want the hang recorded in tc.Err", err, tc.Err)
	}
	for _, want := range []string{"`go env` did not answer within 500ms", goBin + " is a script (#!/bin/sh)"} {
		if !strings.Contains(tc.Err.Error(), want) {
			t.Errorf("diagnosis %q does not say %q", tc.Err, want)
		}
	}
	if !errors.Is(tc.Err, check.ErrNotGo) || !errors.Is(tc.Err, check.ErrNoAnswer) {
		t.Errorf("diagnosis %v is not ErrNotGo and ErrNoAnswer", tc.Err)
	}
	waitGone(t, pidFile, 5*time.Second)
}

// A command that exits while a grandchild it backgrounded keeps its
// output open: Run returns within the pipes' WaitDelay, says so, and the
// grandchild is killed with the rest of the group.
func TestRunKillsGrandchildHoldingOutput(t *testing.T) {
	target, err := check.LocalTarget()
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := target.Command(ctx, "/bin/sh", "-c", "sleep 300 & echo $! > "+pidFile+"; echo started")
	out, err := check.Run(cmd)
	if err == nil || !strings.Contains(err.Error(), "kept its output open") {
		t.Errorf("Run error = %v, want one saying a process kept the output open", err)
	}
	if !strings.Contains(string(out.Stdout), "started") {
		t.Errorf("stdout %q lost what the command printed", out.Stdout)
	}
	waitGone(t, pidFile, 5*time.Second)
}

// A go that prints without end must not make the doctor's memory grow
// with it: what is kept is capped, and the cut is said.
func TestRunCapsOutput(t *testing.T) {
	target, goBin := fakeGo(t, "head -c "+strconv.Itoa(4*check.MaxOutput)+" /dev/zero\nhead -c 100 /dev/zero >&2\n")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := check.Run(target.Command(ctx, goBin))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Stdout) != check.MaxOutput || len(out.Stderr) != 100 {
		t.Errorf("kept %d bytes of stdout and %d of stderr, want %d and 100", len(out.Stdout), len(out.Stderr), check.MaxOutput)
	}
	if !strings.Contains(out.Cut, "stdout: output cut after") || strings.Contains(out.Cut, "stderr") {
		t.Errorf("Cut = %q, want stdout's cut only", out.Cut)
	}
	combined, err := check.CombinedOutput(target.Command(ctx, goBin))
	if err != nil {
		t.Fatal(err)
	}
	if len(combined) > check.MaxOutput+200 || !strings.Contains(string(combined[check.MaxOutput:]), "output cut after") {
		t.Errorf("combined output of %d bytes, want at most the cap and a note", len(combined))
	}
	// `go env -json` that prints too much is not a Go environment.
	tc, err := check.ResolveToolchain(ctx, target, "")
	if err != nil || tc.Err == nil || !strings.Contains(tc.Err.Error(), "printed too much") {
		t.Errorf("go env of 4 caps: err %v tc.Err %v, want printed too much", err, tc.Err)
	}
}

// The go commands of a check leave their go-build* work directories in a
// GOTMPDIR of their own, removed when the command ends, also when the
// check is cancelled in the middle of a build.
func TestGoCancelledLeavesNoWorkDir(t *testing.T) {
	w := checktest.New(t)
	tmp := checktest.Mkdir(t, filepath.Join(w.Dir, "tmp"), 0o777)
	w.Setenv("TMPDIR=" + tmp)
	w.Unsetenv("GOTMPDIR")
	mod := checktest.Mkdir(t, filepath.Join(w.Dir, "mod"), 0o755)
	checktest.WriteFile(t, filepath.Join(mod, "go.mod"), "module example.com/m\n\ngo 1.21\n", 0o644)
	checktest.WriteFile(t, filepath.Join(mod, "main.go"), "package main\n\nimport \"net/http\"\n\nfunc main() { _ = http.ListenAndServe }\n", 0o644)
	w.Target.Dir = mod
	env := w.Env()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sawWork := make(chan string, 1)
	go func() {
		// Cancel once the go command has made its work directory.
		for ctx.Err() == nil {
			if m, _ := filepath.Glob(filepath.Join(tmp, "gopatrol-gotmp-*", "go-build*")); len(m) > 0 {
				sawWork <- m[0]
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	c := check.Check{ID: "t.build", Timeout: 2 * time.Minute, Run: func(ctx context.Context, env *check.Env) check.Result {
		// -a rebuilds every dependency: long enough to be cancelled.
		if _, err := env.Go(ctx, []string{"GOFLAGS=", "GOWORK=off"}, "build", "-a", "-o", os.DevNull, "."); err != nil {
			return check.Errorf("%v", err)
		}
		return check.Passf("built")
	}}
	res := check.Runner{}.Run(ctx, env, []check.Check{c})[0]
	select {
	case p := <-sawWork:
		t.Logf("cancelled while %s existed; result %s: %s", p, res.Status, res.Summary)
	default:
		t.Fatalf("the build ended (%s: %s) before its work directory was seen", res.Status, res.Summary)
	}
	if res.Status != check.Error {
		t.Errorf("status %s, want error for an interrupted check", res.Status)
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind in TMPDIR: %s", e.Name())
	}
}
