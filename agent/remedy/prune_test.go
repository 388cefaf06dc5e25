package remedy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// A build cache with a damaged output, as a failing disk leaves it: the
// fix moves the file out of the go command's way, the check passes, and
// undo puts the very bytes back.
func TestPruneDamagedCache(t *testing.T) {
	w := checktest.New(t)
	gocache := filepath.Join(w.Dir, "gocache")
	w.Setenv("GOCACHE=" + gocache)
	c := checktest.Find(t, allChecks(), "build.cacheverify")
	// One entry as cmd/go writes it (index <xx>/<action>-a naming output
	// <yy>/<output>-d), whose output no longer hashes to its ID. No build
	// uses it, so the check's own verify build cannot rewrite it.
	b := []byte("the bytes a failing disk left in place of an object file\n")
	out := fmt.Sprintf("%x", sha256.Sum256([]byte("what the compiler wrote")))
	action := fmt.Sprintf("%x", sha256.Sum256([]byte(w.Dir)))
	damaged := filepath.Join(gocache, out[:2], out+"-d")
	checktest.WriteFile(t, damaged, string(b), 0o644)
	checktest.WriteFile(t, filepath.Join(gocache, action[:2], action+"-a"),
		fmt.Sprintf("v1 %s %s %20d %20d\n", action, out, len(b), time.Now().UnixNano()), 0o644)

	ctx := context.Background()
	world := snapshot(t, gocache)
	plan, err := Fix(ctx, w.Env(), c.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Refused != "" || len(plan.Changes) != 2 || !strings.Contains(plan.Changes[1], damaged) {
		t.Fatalf("dry run: refused %q, changes %q; before %s %v", plan.Refused, plan.Changes, plan.Before.Status, plan.Before.Evidence)
	}
	// The check's own verify build refreshes entries it uses; the dry
	// run itself must not move or change the damaged file.
	after := snapshot(t, gocache)
	if after[damaged] != world[damaged] {
		t.Errorf("dry run changed %s", damaged)
	}
	for p := range after {
		if strings.Contains(p, "gopatrol-quarantine") {
			t.Errorf("dry run made %s", p)
		}
	}

	// As check --fix does: the result of the run that printed the plan.
	o, err := FixResult(ctx, w.Env(), c, plan.Before, false)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Held {
		t.Fatalf("fix did not hold: %s %s %v", o.After.Status, o.After.Summary, o.After.Evidence)
	}
	if _, err := os.Lstat(damaged); err == nil {
		if string(mustRead(t, damaged)) == string(b) {
			t.Errorf("the damaged file %s is still in the cache", damaged)
		}
	}
	if err := Undo(ctx, o); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, damaged); string(got) != string(b) {
		t.Errorf("undo did not restore the damaged bytes of %s", damaged)
	}
	if q, _ := filepath.Glob(filepath.Join(gocache, "gopatrol-quarantine-*")); len(q) != 0 {
		t.Errorf("undo left the quarantine %v", q)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
