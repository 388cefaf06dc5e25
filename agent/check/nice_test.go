package check_test

import (
	"context"
	"strings"
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
	plain := run(0)
	if plain != "0 0" {
		t.Skipf("this test runs at niceness %q, not 0: it cannot tell 7 from inherited", plain)
	}
	for range 3 { // each start on a fresh thread: none is left reniced
		if got := run(7); got != "7 7" {
			t.Errorf("Nice 7: the command and its child run at %q, want 7 7", got)
		}
		if got := run(0); got != "0 0" {
			t.Errorf("after a niced command, a plain one runs at %q, want 0 0", got)
		}
	}
}
