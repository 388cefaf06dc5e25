package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/inventory"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// stateWith writes an agent state directory whose inventory holds one
// environment in a mount namespace no process has (inode 1 is never one),
// last patrolled as unreachable, and one that failed a check.
func stateWith(t *testing.T) (dir string, gone, broken inventory.Entry) {
	t.Helper()
	dir = t.TempDir()
	inv := inventory.New(inventory.Config{Limit: 10})
	now := time.Now()
	goneEnv := inventory.Env{Go: "/opt/go/bin/go", GOROOT: "/opt/go", Version: "go1.26.8", UID: 65534,
		Vars: map[string]string{"GOFLAGS": "-mod=mod"}, Container: inventory.Container{MountNS: 1}}
	brokenEnv := inventory.Env{Go: "/usr/local/go/bin/go", GOROOT: "/usr/local/go", Version: "go1.26.8", UID: 1000,
		Vars: map[string]string{"GOCACHE": "/ro/cache"}, Module: "/src/m"}
	gid, _ := inv.Observe(goneEnv, now, 999999999)
	bid, _ := inv.Observe(brokenEnv, now, 999999998)
	inv.SetPatrol(gid, inventory.Result{At: now, Outcome: inventory.OutcomeUnreachable, Reason: "environment cannot be entered: no process left"})
	inv.SetPatrol(bid, inventory.Result{At: now, Outcome: inventory.OutcomeFail,
		Problems: []inventory.Problem{{ID: "gocache.writable", Status: "fail", Summary: "GOCACHE /ro/cache is not writable"}}})
	if err := inventory.Save(inventory.StatePath(dir), inv.Snapshot(now, now.Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	gone, _ = inv.Get(gid)
	broken, _ = inv.Get(bid)
	return dir, gone, broken
}

func TestAgentStatusListsTheInventory(t *testing.T) {
	dir, gone, broken := stateWith(t)
	stdout, stderr, code := gopatrol(t, nil, "agent", "status", "--state-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"2 Go environments", gone.ID, broken.ID, "unreachable", "no process left", "mntns 1",
		"fail gocache.writable: GOCACHE /ro/cache is not writable", "gopatrol check --env " + broken.ID, "appeared"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("agent status lacks %q:\n%s", want, stdout)
		}
	}
	stdout, _, code = gopatrol(t, nil, "agent", "status", "--state-dir", dir, "-o", "json")
	var st inventory.State
	if err := json.Unmarshal([]byte(stdout), &st); code != 0 || err != nil || len(st.Entries) != 2 {
		t.Errorf("-o json: exit %d, %v, %d entries", code, err, len(st.Entries))
	}
}

func TestEnvFlagErrors(t *testing.T) {
	dir, gone, _ := stateWith(t)
	empty := t.TempDir()
	cases := []struct {
		args []string
		code int
		says string
	}{
		{[]string{"agent", "status", "--state-dir", empty}, 1, "no environment inventory"},
		{[]string{"agent", "status", "--agent-config", filepath.Join(empty, "none.yaml")}, 2, "none.yaml"},
		{[]string{"check", "--env", "0123456789ab", "--state-dir", dir}, 2, "0123456789ab"},
		{[]string{"check", "--env", "0123", "--state-dir", empty}, 1, "no environment inventory"},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, struct {
			args []string
			code int
			says string
		}{[]string{"check", "--env", gone.ID, "--state-dir", dir}, 4, "cannot be entered"})
	}
	for _, tc := range cases {
		stdout, stderr, code := gopatrol(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d saying %q", tc.args, code, stderr, tc.code, tc.says)
		}
		if strings.Contains(stdout, "pass") {
			t.Errorf("%v: a report on stdout for what could not be checked: %s", tc.args, stdout)
		}
	}
	if os.Geteuid() != 0 {
		testgate.Missing(t, "the unreachable --env case needs root")
	}
}
