package catalog

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// The whole doctor with a wrapper script that hangs first on PATH: the
// run ends, the report says that go env did not answer and go.binary
// names the script.
func TestDoctorWithHangingGoEnds(t *testing.T) {
	w := checktest.New(t)
	bin := checktest.Mkdir(t, filepath.Join(w.Dir, "wrapper"), 0o755)
	script := filepath.Join(bin, "go")
	checktest.WriteFile(t, script, "#!/bin/sh\nsleep 300\n", 0o755)
	w.Setenv("PATH=" + bin + ":" + w.Getenv("PATH"))

	done := make(chan check.Report, 1)
	go func() {
		// The caller's deadline wins over GoEnvTimeout when earlier.
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		tc, err := check.ResolveToolchain(rctx, w.Target, "")
		cancel()
		if err != nil {
			t.Error(err)
			return
		}
		env := &check.Env{Target: w.Target, Toolchain: tc}
		checks, _ := check.Select(All(), nil, nil, false)
		done <- check.NewReport(tc, check.Runner{Timeout: 5 * time.Second}.Run(context.Background(), env, checks))
	}()
	var rep check.Report
	select {
	case rep = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the doctor did not finish with a hanging go on PATH")
	}
	if !strings.Contains(rep.Toolchain.Error, "`go env` did not answer within") || !strings.Contains(rep.Toolchain.Error, script+" is a script") {
		t.Errorf("toolchain error %q, want the diagnosis naming %s", rep.Toolchain.Error, script)
	}
	for _, r := range rep.Results {
		if r.ID == "go.binary" {
			checktest.Expect(t, r, check.Fail, script)
		}
		if r.Status == check.Error {
			t.Errorf("%s: error %s", r.ID, r.Summary)
		}
	}
}
