package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/bpf/bpftest"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

// A go build while the agent runs reaches the receiver as one trace: the
// go command's root span (its pid, subcommand and pattern), a compile
// span per package under it, a link; and the critical path is recorded
// per subcommand.
func TestGoBuildReachesReceiverAsTrace(t *testing.T) {
	bpftest.Require(t)
	r := otlptest.Start(t, otlptest.Options{})
	cfg := sensorConfig + "traces:\n  share: 1\n"
	p := startAgent(t, agentOpts{config: cfg, env: append(otlpEnv(r, time.Second), "OTEL_TRACES_EXPORTER=otlp")})
	if body := p.waitReady(t); !strings.Contains(body, "sensors attached") {
		t.Fatalf("/readyz: %s", body)
	}
	p.waitLog(t, "build traces on", 10*time.Second)

	dir := t.TempDir()
	link := goLink(t, dir)
	mod := filepath.Join(dir, "m")
	os.MkdirAll(filepath.Join(mod, "inner"), 0o755)
	stamp := time.Now().UnixNano()
	files := map[string]string{
		"go.mod":         "module example.com/m\n\ngo 1.22\n",
		"main.go":        fmt.Sprintf("package main\n\nimport \"example.com/m/inner\"\n\nfunc main() { println(inner.V, %d) }\n", stamp),
		"inner/inner.go": fmt.Sprintf("package inner\n\nconst V = %d\n", stamp),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(mod, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, link, "build", "-o", filepath.Join(dir, "m.bin"), ".")
	build.Dir = mod
	build.Env = append(os.Environ(), "GOFLAGS=", "GOTOOLCHAIN=local", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pid := fmt.Sprint(build.Process.Pid)
	// SIGTERM flushes the spans and the last points.
	if err := p.stop(t, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("agent exit after SIGTERM: %v", err)
	}
	var root otlptest.Span
	spans := r.Spans()
	for _, s := range spans {
		if s.ParentID == "" && s.Attrs["process.pid"] == pid {
			root = s
		}
	}
	if root.Name != "go build" || root.Attrs["gopatrol.go.patterns"] == "" || root.Status != "OK" {
		t.Fatalf("root span of go pid %s: %+v (of %d spans)", pid, root, len(spans))
	}
	children := map[string]string{}
	for _, s := range spans {
		if s.TraceID == root.TraceID && s.ParentID == root.SpanID {
			children[s.Name] = s.Status
		}
	}
	for _, want := range []string{"compile example.com/m/inner", "compile main", "link"} {
		if children[want] != "OK" {
			t.Errorf("no OK child span %q of the root; children %v", want, children)
		}
	}
	if _, n := latest(r.Requests(), "gopatrol.build.critical_path", map[string]string{"gopatrol.go.subcommand": "build"}); n == 0 {
		t.Error("no gopatrol.build.critical_path{subcommand=build} recorded")
	}
}
