package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// A check that ends in status error (here: overrunning its timeout) makes
// the run exit 4, with the report printed.
func TestCheckInErrorExitsIncomplete(t *testing.T) {
	stdout, stderr, code := gopatrol(t, nil, "check", "-o", "json", "--only", "go.version-skew", "--timeout", "1ms")
	if code != check.ExitIncomplete {
		t.Fatalf("exit %d, want %d; stderr %q\n%s", code, check.ExitIncomplete, stderr, stdout)
	}
	rep := decodeReport(t, stdout)
	if len(rep.Results) != 1 || rep.Results[0].Status != check.Error || rep.Summary[check.Error] != 1 {
		t.Errorf("report %+v: want go.version-skew in error", rep)
	}
}

// SIGINT while a check runs: the partial report is printed, the
// interrupted check says so, and the exit code is 4, not 0.
func TestInterruptedRunExitsIncomplete(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// build.race-pprof builds and runs a race-enabled test: seconds, long
	// enough to be interrupted in the middle.
	cmd := exec.CommandContext(ctx, gopatrolBin, "check", "-o", "json", "--slow", "--only", "build.race-pprof")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once the check runs its `go test`: the signal handler is
	// in place by then (a SIGINT before it would just kill the process),
	// and the toolchain's `go env` is done.
	deadline := time.Now().Add(time.Minute)
	for !hasChild(cmd.Process.Pid, "go", "test") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no go command under gopatrol within a minute\n%s%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != check.ExitIncomplete {
		t.Fatalf("after SIGINT: %v, want exit %d; stderr %q\n%s", err, check.ExitIncomplete, stderr.String(), stdout.String())
	}
	rep := decodeReport(t, stdout.String())
	if len(rep.Results) != 1 {
		t.Fatalf("report %+v: want the one check", rep)
	}
	r := rep.Results[0]
	// Whatever the check made of its killed commands, the runner does not
	// trust it: status error, saying why.
	if r.Status != check.Error || !strings.Contains(r.Summary, "interrupted") {
		t.Errorf("interrupted check: status %s summary %q", r.Status, r.Summary)
	}
}

func decodeReport(t *testing.T, stdout string) check.Report {
	t.Helper()
	var rep check.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout)
	}
	return rep
}

// hasChild: a process named comm, with arg among its arguments, has
// parent pid.
func hasChild(pid int, comm, arg string) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(string(b[end+1:]))
		if len(fields) < 2 || string(b[open+1:end]) != comm {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid != pid {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		if slices.Contains(strings.Split(string(cmdline), "\x00"), arg) {
			return true
		}
	}
	return false
}
