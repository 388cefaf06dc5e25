package check_test

import (
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
)

func TestFinalExitCode(t *testing.T) {
	tests := []struct {
		name        string
		statuses    []check.Status
		failOnWarn  bool
		interrupted bool
		want        int
	}{
		{"all pass", []check.Status{check.Pass, check.Skip}, false, false, check.ExitOK},
		{"warn is ok", []check.Status{check.Pass, check.Warn}, false, false, check.ExitOK},
		{"warn with --fail-on warn", []check.Status{check.Warn}, true, false, check.ExitFail},
		{"error", []check.Status{check.Pass, check.Error}, false, false, check.ExitIncomplete},
		{"interrupted, nothing in error", []check.Status{check.Pass}, false, true, check.ExitIncomplete},
		{"fail wins over error", []check.Status{check.Fail, check.Error}, false, true, check.ExitFail},
		{"no checks", nil, false, false, check.ExitOK},
	}
	for _, tt := range tests {
		var rs []check.Result
		for i, s := range tt.statuses {
			rs = append(rs, check.Result{ID: string(rune('a' + i)), Status: s})
		}
		if got := check.NewReport(nil, rs).FinalExitCode(tt.failOnWarn, tt.interrupted); got != tt.want {
			t.Errorf("%s: FinalExitCode = %d, want %d", tt.name, got, tt.want)
		}
	}
}
