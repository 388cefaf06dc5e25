package main

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// The gate on the real binary: GOCACHE is a regular file, so
// gocache.writable fails. Gated, the run exits 1 with the message on
// stderr and in the message file; the same failure under --warn-only
// exits 0 with a warning; a policy naming no check is a usage error.
func TestGatePolicy(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "gocache")
	if err := os.WriteFile(notDir, []byte("a file, not a cache"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"GOCACHE=" + notDir}
	msgFile := filepath.Join(dir, "termination-log")
	only := []string{"check", "--only", "gocache.writable,go.binary"}
	tests := []struct {
		name     string
		args     []string
		code     int
		stderr   []string
		msgInFil bool
	}{
		{"failure of a gating check stops the start", []string{"--gate", "gocache.*,go.binary", "--gate-message-file", msgFile}, 1,
			[]string{"this environment cannot build", "- gocache.writable:", notDir}, true},
		{"all gates", []string{"--gate", "all"}, 1, []string{"cannot build", "gocache.writable"}, false},
		{"the same failure only warns", []string{"--gate", "all", "--warn-only", "gocache.writable"}, 0,
			[]string{"warnings (not gating, 1)", "gocache.writable (fail)"}, false},
		{"a policy naming no check", []string{"--gate", "gocahe.*"}, 2, []string{`--gate "gocahe.*": matches no check`}, false},
		{"a bad glob", []string{"--gate", "go[cache"}, 2, []string{"not a valid glob"}, false},
		{"--warn-only alone", []string{"--warn-only", "gocache.*"}, 2, []string{"need --gate"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(msgFile)
			_, stderr, code := gopatrol(t, env, append(only, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			b, err := os.ReadFile(msgFile)
			if tt.msgInFil != (err == nil) {
				t.Fatalf("message file: %v (want written: %v)", err, tt.msgInFil)
			}
			if tt.msgInFil && !strings.Contains(string(b), "gocache.writable") {
				t.Errorf("message file %q lacks the failing check", b)
			}
		})
	}
}

// The gate with --fix, as an init container run by root for a build user
// would run it over the pod's own cache volume: the volume is root's, so
// gocache.writable fails for nobody; --fix --yes hands it to nobody, the
// checks run again, and the gate lets the pod start. Without --fix the
// same world stops it.
func TestGateFixesThePodsOwnCache(t *testing.T) {
	checktest.RequireRoot(t)
	// A world's directory: other users can traverse it, as they can a
	// pod's volume mount point.
	volume := filepath.Join(checktest.New(t).Dir, "cache")
	gocache := filepath.Join(volume, "go-build")
	for _, d := range []string{volume, gocache} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"GOCACHE=" + gocache}
	args := []string{"check", "--only", "gocache.writable", "--as-user", "nobody", "--gate", "gocache.*"}

	if _, stderr, code := gopatrol(t, env, args...); code != 1 || !strings.Contains(stderr, "gocache.writable") {
		t.Fatalf("without --fix: exit %d, want 1 naming gocache.writable:\n%s", code, stderr)
	}
	stdout, stderr, code := gopatrol(t, env, append(args, "--fix", "--yes")...)
	if code != 0 {
		t.Fatalf("with --fix --yes: exit %d, want 0 (fixed, then gated on the rerun):\n%s%s", code, stdout, stderr)
	}
	fi, err := os.Stat(gocache)
	if err != nil {
		t.Fatal(err)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != nobody.Uid {
		t.Errorf("%s is owned by uid %d after the fix, want nobody (%s)\n%s", gocache, uid, nobody.Uid, stdout)
	}
}
