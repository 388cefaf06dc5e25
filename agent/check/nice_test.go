package check_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// A target with Nice runs its commands, and what they start, at that
// niceness; one without runs them at this process's; the niceness does
// not leak to later commands.
func TestTargetNice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Field 19 of /proc/PID/stat is the niceness; the cut is a child
	// of the shell, the nested shell's cut a grandchild.
	script := `cut -d' ' -f19 /proc/self/stat; sh -c "cut -d' ' -f19 /proc/self/stat"`
	run := func(nice int) string {
		t.Helper()
		tg := &check.Target{Root: "/", Dir: "/", Environ: []string{"PATH=/usr/bin:/bin"}, Nice: nice}
		out, err := check.CombinedOutput(tg.Command(ctx, "/bin/sh", "-c", script))
		if err != nil {
			t.Fatalf("nice %d: %v: %s", nice, err, out)
		}
		return strings.Join(strings.Fields(string(out)), " ")
	}
	// Nice 0 means "this process's": whatever the test inherited. The
	// niced commands must run at exactly the asked value, which is chosen
	// unlike the inherited one so the two cannot be confused.
	plain := run(0)
	if f := strings.Fields(plain); len(f) != 2 || f[0] != f[1] {
		t.Fatalf("a plain command and its child run at %q: want one inherited niceness", plain)
	}
	want := 7
	if strings.Fields(plain)[0] == "7" {
		want = 8
	}
	wantOut := fmt.Sprintf("%d %d", want, want)
	for range 3 { // each start on a fresh thread: none is left reniced
		if got := run(want); got != wantOut {
			t.Errorf("Nice %d: the command and its child run at %q, want %s", want, got, wantOut)
		}
		if got := run(0); got != plain {
			t.Errorf("after a niced command, a plain one runs at %q, want %s as before", got, plain)
		}
	}
}

// A child's parent-death signal follows the thread that forked it: the
// threads that start niced commands must never end, or they would kill
// what they started, and what the runtime had forked from them before
// (here: sleepers started with Target.Command's SIGKILL on parent death).
func TestNicedStartsKillNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain := &check.Target{Root: "/", Dir: "/", Environ: []string{"PATH=/usr/bin:/bin"}}
	var sleepers []*exec.Cmd
	for range 8 {
		c := plain.Command(ctx, "sleep", "30")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		sleepers = append(sleepers, c)
		runtime.Gosched()
	}
	defer func() {
		for _, c := range sleepers {
			c.Process.Kill()
			c.Wait()
		}
	}()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			tg := &check.Target{Root: "/", Dir: "/", Environ: []string{"PATH=/usr/bin:/bin"}, Nice: 1 + i%3}
			if out, err := check.CombinedOutput(tg.Command(ctx, "true")); err != nil {
				t.Errorf("niced command: %v: %s", err, out)
			}
		})
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond) // a parent-death signal is delivered at once
	for _, c := range sleepers {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Process.Pid))
		if f := strings.Fields(string(st)); err != nil || len(f) < 3 || f[2] == "Z" {
			t.Errorf("sleeper %d died while niced commands ran: %v %q", c.Process.Pid, err, st)
		}
	}
}

// A target with Idle runs its commands, and what they start, under
// SCHED_IDLE at its niceness, and a plain command after it does not.
func TestTargetIdle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Fields 19 and 41 of /proc/PID/stat are the niceness and the
	// policy (5: SCHED_IDLE, 0: SCHED_OTHER).
	script := `cut -d' ' -f19,41 /proc/self/stat; sh -c "cut -d' ' -f19,41 /proc/self/stat"`
	run := func(tg *check.Target) string {
		t.Helper()
		out, err := check.CombinedOutput(tg.Command(ctx, "/bin/sh", "-c", script))
		if err != nil {
			t.Fatalf("%+v: %v: %s", tg, err, out)
		}
		return strings.Join(strings.Fields(string(out)), " ")
	}
	env := []string{"PATH=/usr/bin:/bin"}
	for _, tc := range []struct {
		tg   *check.Target
		want string
	}{
		{&check.Target{Root: "/", Dir: "/", Environ: env, Nice: 19, Idle: true}, "19 5 19 5"},
		{&check.Target{Root: "/", Dir: "/", Environ: env, Idle: true}, "0 5 0 5"},
		{&check.Target{Root: "/", Dir: "/", Environ: env, Nice: 19}, "19 0 19 0"},
	} {
		if got := run(tc.tg); got != tc.want {
			t.Errorf("Nice %d, Idle %v: the command and its child run at %q, want %q (niceness, policy)", tc.tg.Nice, tc.tg.Idle, got, tc.want)
		}
	}
	if got := run(&check.Target{Root: "/", Dir: "/", Environ: env}); strings.Contains(got, " 5") {
		t.Errorf("after idle commands, a plain one runs at %q: not SCHED_IDLE", got)
	}
}
