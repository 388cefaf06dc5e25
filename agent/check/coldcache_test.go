package check_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// A fresh GOCACHE is cold (the real go env creates its directories, but no
// build has finished there); the runner then gives a check the cold-cache
// budget instead of calling the first build a hang. An explicit --timeout
// is kept.
func TestColdCache(t *testing.T) {
	w := checktest.New(t)
	warm := w.Env()
	if warm.Toolchain.ColdCache {
		t.Fatalf("the tests' own build cache %s counts as cold", w.Getenv("GOCACHE"))
	}
	w.Setenv("GOCACHE=" + filepath.Join(t.TempDir(), "fresh-cache"))
	cold := w.Env()
	if !cold.Toolchain.ColdCache {
		t.Fatalf("a fresh GOCACHE %s does not count as cold", w.Getenv("GOCACHE"))
	}

	// Stands for a first build: longer than the check's usual timeout.
	firstBuild := check.Check{ID: "first-build", Timeout: 50 * time.Millisecond, Run: func(ctx context.Context, _ *check.Env) check.Result {
		select {
		case <-time.After(300 * time.Millisecond):
			return check.Passf("built")
		case <-ctx.Done():
			return check.Errorf("killed")
		}
	}}
	tests := []struct {
		name   string
		runner check.Runner
		env    *check.Env
		want   check.Status
	}{
		{"cold cache: budget extended", check.Runner{}, cold, check.Pass},
		{"warm cache: a hang", check.Runner{}, warm, check.Error},
		{"cold cache, explicit --timeout kept", check.Runner{Timeout: 50 * time.Millisecond}, cold, check.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.runner.Run(context.Background(), tt.env, []check.Check{firstBuild})[0]
			if res.Status != tt.want {
				t.Fatalf("status %s, want %s: %s %v", res.Status, tt.want, res.Summary, res.Evidence)
			}
			if tt.want == check.Pass && res.Evidence["cold cache"] == "" {
				t.Errorf("the result does not say the cache was cold: %v", res.Evidence)
			}
		})
	}
}
