package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
