package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/bpf/bpftest"
)

func TestTraceBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"trace", "-o", "yaml"}, `-o "yaml"`},
		{[]string{"trace", "--ring-size", "1000"}, "--ring-size 1000"},
		{[]string{"trace", "--duration", "-1s"}, "--duration -1s"},
		{[]string{"trace", "--go-name", "/usr/bin/go"}, `--go-name "/usr/bin/go"`},
	}
	for _, tt := range tests {
		_, stderr, code := gopatrol(t, nil, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("gopatrol %v: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
}

// TestTraceWithoutCapabilities: without CAP_BPF/CAP_PERFMON trace names
// what is missing and exits 2.
func TestTraceWithoutCapabilities(t *testing.T) {
	args := []string{gopatrolBin, "trace", "--duration", "1s"}
	if os.Geteuid() == 0 {
		args = append([]string{"setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("trace without capabilities: %v, want exit 2; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "CAP_BPF") || !strings.Contains(stderr.String(), "root") {
		t.Errorf("stderr does not say what is missing:\n%s", stderr.String())
	}
}

// TestTraceJSON runs `gopatrol trace -o json` around a go command and finds
// its exec and exit, one JSON object per line, and the final stats line.
func TestTraceJSON(t *testing.T) {
	bpftest.Require(t)
	cmd := exec.Command(gopatrolBin, "trace", "-o", "json", "--duration", "30s", "--no-tls")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(errPipe)
		var all strings.Builder
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "gopatrol trace: watching") {
				select {
				case ready <- "":
				default:
				}
			}
		}
		ready <- all.String()
	}()
	select {
	case msg := <-ready:
		if msg != "" {
			t.Fatalf("trace ended before attaching:\n%s", msg)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("trace did not attach within 20s")
	}

	token := fmt.Sprintf("GOPATROL_TRACE_TEST_%d", os.Getpid())
	g := exec.Command("go", "env", token)
	g.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=")
	if out, err := g.CombinedOutput(); err != nil {
		t.Fatalf("go env: %v\n%s", err, out)
	}
	pid := g.Process.Pid

	// A refused file: nobody's go command reading a GOENV file under a
	// directory only root may enter. The go command's own syscall-error
	// probe sees it (trace's default, no syscall hook).
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	private := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	goenv := filepath.Join(private, "env")
	refused := exec.Command("go", "env", "GOROOT")
	refused.Dir = "/"
	refused.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=", "GOENV="+goenv, "HOME=/")
	refused.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	// go env carries on without its GOENV file: the refused open is what
	// the trace must show.
	refused.Run()
	time.Sleep(500 * time.Millisecond)
	// SIGINT is Ctrl-C: trace must stop cleanly, print stats and exit 0.
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("trace after Ctrl-C: %v\n%s", err, <-ready)
	}

	var sawExec, sawExit, sawStats, sawFailure bool
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", line, err)
		}
		if what := fmt.Sprintf("trace.%s", ev["type"]); goldenFields[what].always != nil {
			checkFields(t, what, ev)
		}
		switch ev["type"] {
		case "exec":
			if ev["pid"] == float64(pid) {
				sawExec = fmt.Sprint(ev["args"]) == fmt.Sprintf("[go env %s]", token) && ev["root_pid"] == float64(pid)
				if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["time"])); err != nil {
					t.Errorf("exec time: %v", err)
				}
			}
		case "exit":
			if ev["pid"] == float64(pid) {
				sawExit = ev["wait_status"] == float64(0) && ev["duration_ns"].(float64) > 0
			}
		case "file_failure":
			if ev["root_pid"] == float64(refused.Process.Pid) && ev["path"] == goenv && ev["errno"] == "EACCES" {
				sawFailure = true
			}
		case "stats":
			sawStats = ev["drops"] != nil && ev["programs"] != nil
		}
	}
	if !sawExec || !sawExit || !sawStats || !sawFailure {
		t.Errorf("exec of go env %s (pid %d) %v, its exit %v, stats line %v, EACCES on %s %v in:\n%s",
			token, pid, sawExec, sawExit, sawStats, goenv, sawFailure, stdout.String())
	}
}

// hangingGo writes a go wrapper script that never answers: its child
// keeps stdout open too, so waiting for the pipe alone would hang. It
// returns the script and the file where it writes the child's pid.
func hangingGo(t *testing.T) (script, pidFile string) {
	t.Helper()
	dir := t.TempDir()
	pidFile = filepath.Join(dir, "sleeper.pid")
	script = filepath.Join(dir, "go")
	body := "#!/bin/sh\nsleep 300 &\necho $! > " + pidFile + "\nwait\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, pidFile
}

// TestTraceHangingDefaultGo: the go first on PATH hangs: trace says so
// once the deadline passes and traces anyway, unclassified.
func TestTraceHangingDefaultGo(t *testing.T) {
	bpftest.Require(t)
	script, _ := hangingGo(t)
	path := "PATH=" + filepath.Dir(script) + ":" + os.Getenv("PATH")
	_, stderr, code := gopatrol(t, []string{path}, "trace", "--duration", "1s", "--no-tls")
	if code != 0 || !strings.Contains(stderr, "did not answer within") || !strings.Contains(stderr, "will not be classified") {
		t.Errorf("trace with a hanging go first on PATH: exit %d, stderr %q; want 0 and the warning", code, stderr)
	}
}

// TestTraceHangingGo: `trace --go` through a wrapper script that never
// answers (its child keeps stdout open too) ends within the go env
// deadline with an error naming the script, and leaves no process behind.
func TestTraceHangingGo(t *testing.T) {
	script, pidFile := hangingGo(t)
	start := time.Now()
	_, stderr, code := gopatrol(t, nil, "trace", "--go", script, "--duration", "1s")
	elapsed := time.Since(start)
	if code != 2 || !strings.Contains(stderr, "did not answer within") || !strings.Contains(stderr, script) {
		t.Errorf("trace --go %s: exit %d, stderr %q; want 2 and an error naming the script and the deadline", script, code, stderr)
	}
	if elapsed > goEnvTimeout+10*time.Second {
		t.Errorf("trace took %v, the go env deadline is %v", elapsed, goEnvTimeout)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the script did not run: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The process group was killed: the grandchild is gone, or a zombie
	// waiting for a reaper that is not ours.
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the script's child %d outlived trace", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive: pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
