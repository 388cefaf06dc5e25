package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/bpf/bpftest"
)

func TestTraceBuildsJSONRefused(t *testing.T) {
	_, stderr, code := gopatrol(t, nil, "trace", "--builds", "-o", "json")
	if code != 2 || !strings.Contains(stderr, "--builds") || !strings.Contains(stderr, "-o json") {
		t.Errorf("trace --builds -o json: exit %d, stderr %q; want 2 naming both", code, stderr)
	}
}

// TestTraceBuilds runs `gopatrol trace --builds` around a real go build
// of a two-package module and finds its waterfall: the go command's line
// with its outcome, a compile line per package and the link, indented
// under it.
func TestTraceBuilds(t *testing.T) {
	bpftest.Require(t)
	cmd := exec.Command(gopatrolBin, "trace", "--builds", "--duration", "60s", "--no-tls")
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
	attached := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "gopatrol trace: watching") {
				attached <- true
			}
		}
		attached <- false
	}()
	select {
	case ok := <-attached:
		if !ok {
			t.Fatal("trace ended before attaching")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("trace did not attach within 20s")
	}

	dir := t.TempDir()
	nonce := time.Now().UnixNano()
	files := map[string]string{
		"go.mod":  "module example.com/tb\n\ngo 1.22\n",
		"a/a.go":  fmt.Sprintf("package a\n\nconst N = %d\n", nonce),
		"b/b.go":  fmt.Sprintf("package b\n\nimport \"example.com/tb/a\"\n\nconst N = a.N + %d\n", nonce),
		"main.go": "package main\n\nimport \"example.com/tb/b\"\n\nfunc main() { println(b.N) }\n",
	}
	for name, src := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g := exec.Command("go", "build", "-o", filepath.Join(dir, "tb.bin"), ".")
	g.Dir = dir
	g.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=", "GOPROXY=off", "GOWORK=off")
	if out, err := g.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("trace --builds: %v\n%s", err, stdout.String())
	}
	// Other builds on the machine have waterfalls too: find ours.
	var ours []string
	for _, block := range strings.Split(stdout.String(), "\n") {
		if strings.Contains(block, " go build . — ") {
			ours = []string{block}
			continue
		}
		if ours != nil && strings.HasPrefix(block, "  ") {
			ours = append(ours, block)
		} else if ours != nil && len(ours) > 1 && strings.Contains(strings.Join(ours, "\n"), "example.com/tb/a") {
			break
		}
	}
	text := strings.Join(ours, "\n")
	for _, want := range []string{"— ok in", "|   compile example.com/tb/a", "|   compile example.com/tb/b", "|   compile main", "|   link", "critical path"} {
		if !strings.Contains(text, want) {
			t.Errorf("waterfall lacks %q:\n%s\n(all output:\n%s)", want, text, stdout.String())
		}
	}
}
