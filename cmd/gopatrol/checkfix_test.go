package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// check --fix on the real binary: off a terminal it plans and changes
// nothing; with --yes it applies, checks again, and the report passes.
func TestCheckFixPlansThenApplies(t *testing.T) {
	w := checktest.New(t)
	goenv := w.Getenv("GOENV")
	const broken = "GOPRIVATE=example.com\nGO111MODULE=off\n"
	checktest.WriteFile(t, goenv, broken, 0o644)
	args := []string{"check", "--only", "env.config", "-C", w.Target.Dir, "--fix"}

	stdout, stderr, code := gopatrol(t, w.Target.Environ, args...)
	if code != 1 || !strings.Contains(stdout, "dry run") || !strings.Contains(stdout, "remove the line GO111MODULE=off") || !strings.Contains(stdout, "undo:") {
		t.Errorf("--fix off a terminal: exit %d, want 1 and a plan:\n%s%s", code, stdout, stderr)
	}
	if b, _ := os.ReadFile(goenv); string(b) != broken {
		t.Errorf("the dry run changed %s: %q", goenv, b)
	}

	stdout, stderr, code = gopatrol(t, w.Target.Environ, append(args, "--yes", "-o", "json")...)
	var rep struct {
		Summary map[string]int `json:"summary"`
		Fixes   []fixJSON      `json:"fixes"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--fix --yes -o json: %v\n%s%s", err, stdout, stderr)
	}
	if code != 0 || rep.Summary["pass"] != 1 || len(rep.Fixes) != 1 || !rep.Fixes[0].Held || rep.Fixes[0].DryRun || len(rep.Fixes[0].Undo) != 1 {
		t.Errorf("--fix --yes: exit %d, %+v\n%s", code, rep, stderr)
	}
	if b, _ := os.ReadFile(goenv); string(b) != "GOPRIVATE=example.com\n" {
		t.Errorf("after the fix %s holds %q", goenv, b)
	}

	for _, bad := range [][]string{{"check", "--yes"}, {"check", "--dry-run"}, {"check", "--fix", "--dry-run", "--yes"}, {"check", "--fix", "--env", "0123"}} {
		if _, stderr, code := gopatrol(t, nil, bad...); code != 2 || !strings.Contains(stderr, "--fix") && !strings.Contains(stderr, "contradict") {
			t.Errorf("%q: exit %d, want 2 naming the flags: %s", bad, code, stderr)
		}
	}
}

// The progress line appears on a terminal while a check runs, names it,
// and is erased at the end; off a terminal there is none.
func TestProgressLine(t *testing.T) {
	t.Setenv("TERM", "xterm")
	master, tty := openPTY(t)
	p := newProgress(tty, 3)
	p.event("build.pie-aslr", false)
	p.event("go.binary", false)
	p.event("go.binary", true)
	time.Sleep(progressDelay + 600*time.Millisecond)
	p.end()
	if err := master.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var got string
	buf := make([]byte, 4096)
	for !strings.HasSuffix(got, "\r\x1b[K") {
		n, err := master.Read(buf)
		got += string(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(got, "checking: 1/3 done; running build.pie-aslr") || !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("terminal got %q", got)
	}

	_, pipeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipeW.Close()
	if p := newProgress(pipeW, 3); p != nil {
		t.Error("a pipe got a progress line")
	}
}
