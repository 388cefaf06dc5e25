package buildtrace_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/gopatrol/gopatrol/agent/buildtrace"
	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/bpf/bpftest"
	"github.com/gopatrol/gopatrol/bpf/tlsprobe"
	"github.com/gopatrol/gopatrol/otelcfg"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

// world is a real sensor feeding a Builder that keeps every build and
// hands it to the test by root pid.
type world struct {
	b     *buildtrace.Builder
	clock buildtrace.Clock
	ch    chan *buildtrace.Build
}

// newWorld opens the sensors (and, with withTLS, the TLS probes of the go
// command on PATH) and starts a Builder on their events.
func newWorld(t *testing.T, cfg buildtrace.Config, withTLS bool) *world {
	t.Helper()
	bpftest.Require(t)
	s, err := bpf.Open(bpf.Config{Eager: true})
	if err != nil {
		t.Fatalf("bpf.Open: %v", err)
	}
	if withTLS {
		if _, err := tlsprobe.Attach(s, tlsprobe.Config{NoLibSSL: true}); err != nil {
			s.Close()
			t.Fatalf("tlsprobe.Attach: %v", err)
		}
	}
	w := &world{clock: buildtrace.NewClock(), ch: make(chan *buildtrace.Build, 256)}
	cfg.KeepAll = true
	w.b = buildtrace.New(cfg, func(b *buildtrace.Build) {
		select {
		case w.ch <- b:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.b.Run(ctx, s.Events(), buildtrace.Monotonic)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := s.Close(); err != nil {
			t.Errorf("sensor Close: %v", err)
		}
	})
	return w
}

// build waits for the build of the go command with pid root. Other
// toolchain trees on the machine are builds too: they are skipped.
func (w *world) build(t *testing.T, root int, timeout time.Duration) *buildtrace.Build {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case b := <-w.ch:
			if int(b.Root.PID) == root {
				return b
			}
		case <-deadline:
			t.Fatalf("no build of go pid %d within %v (builder stats %+v)", root, timeout, w.b.Stats())
		}
	}
}

// writeModule writes module example.com/m with packages p0..p(n-1), each
// with a constant unique to this run (so that they compile, whatever the
// build cache holds), and a main importing them all.
func writeModule(t testing.TB, dir string, n int, broken string) {
	t.Helper()
	nonce := fmt.Sprint(time.Now().UnixNano())
	files := map[string]string{"go.mod": "module example.com/m\n\ngo 1.22\n"}
	var imports, uses []string
	for i := range n {
		p := fmt.Sprintf("p%d", i)
		src := fmt.Sprintf("package %s\n\nconst Nonce = %q\n\nfunc F() string { return Nonce + %q }\n", p, nonce, p)
		if p == broken {
			src += "func Broken( {\n"
		}
		files[p+"/"+p+".go"] = src
		imports = append(imports, fmt.Sprintf("\t%q", "example.com/m/"+p))
		uses = append(uses, p+".F()")
	}
	files["main.go"] = fmt.Sprintf("package main\n\nimport (\n%s\n)\n\nfunc main() { println(%s) }\n",
		strings.Join(imports, "\n"), strings.Join(uses, " + "))
	for name, src := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// goCmd is a go command in dir with no network, its own process group,
// and a deadline after which the group is killed.
func goCmd(t testing.TB, dir string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local", "GOWORK=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	t.Cleanup(func() {
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	return cmd
}

// compiledByX is the -p package of every compile line go build -x printed.
func compiledByX(stderr string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && filepath.Base(f[0]) == "compile" {
			for i := range f[:len(f)-1] {
				if f[i] == "-p" {
					out = append(out, f[i+1])
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func spansOf(b *buildtrace.Build, kind string) []*buildtrace.Span {
	var out []*buildtrace.Span
	var walk func(*buildtrace.Span)
	walk = func(s *buildtrace.Span) {
		if s.Kind == kind {
			out = append(out, s)
		}
		for _, c := range s.Children {
			walk(c)
		}
	}
	walk(b.Root)
	return out
}

// checkNesting fails t for a child that starts before or ends after its
// parent (a connect may start in its process's last microsecond).
func checkNesting(t *testing.T, s *buildtrace.Span) {
	t.Helper()
	for _, c := range s.Children {
		if c.Start < s.Start || c.End > s.End || c.End < c.Start {
			t.Errorf("%s [%v..%v] not within its parent %s [%v..%v]", c.Name, c.Start, c.End, s.Name, s.Start, s.End)
		}
		checkNesting(t, c)
	}
}

// A module with N packages: one trace, with one compile span per package
// go build -x compiled, a link span, under the go command's root span, each
// within its parent's time; exported through OTLP it arrives as one trace
// with the same parentage.
func TestBuildOfModule(t *testing.T) {
	const n = 6
	w := newWorld(t, buildtrace.Config{}, false)
	rcv := otlptest.Start(t, otlptest.Options{})
	tp, err := otelcfg.NewTracerProvider(context.Background(), otelcfg.TracesConfig{
		Exporters: []string{otelcfg.ExporterOTLP},
		OTLP:      otelcfg.OTLPConfig{Protocol: otelcfg.ProtocolHTTPProtobuf, Endpoint: rcv.HTTPTracesEndpoint, Insecure: true, Timeout: 10 * time.Second},
	}, resource.Empty(), otelcfg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Shutdown(context.Background())

	dir := t.TempDir()
	writeModule(t, dir, n, "")
	var stderr bytes.Buffer
	cmd := goCmd(t, dir, "build", "-x", "-o", filepath.Join(dir, "m.bin"), ".")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	root := cmd.Process.Pid
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go build: %v\n%s", err, stderr.String())
	}
	b := w.build(t, root, time.Minute)

	if b.Failed || b.Incomplete || b.Root.Name != "go build" || b.Root.Exit != 0 {
		t.Errorf("root %q failed=%v incomplete=%v exit %d", b.Root.Name, b.Failed, b.Incomplete, b.Root.Exit)
	}
	if !slices.Equal(b.Patterns, []string{"."}) {
		t.Errorf("patterns %q, want [.] (and never -o's value)", b.Patterns)
	}
	want := compiledByX(stderr.String())
	var got []string
	for _, s := range spansOf(b, buildtrace.KindCompile) {
		if s.Package != "" {
			got = append(got, s.Package)
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("compile spans %v\ngo build -x compiled %v", got, want)
	}
	for i := range n {
		if p := fmt.Sprintf("example.com/m/p%d", i); !slices.Contains(got, p) {
			t.Errorf("no compile span of %s", p)
		}
	}
	if links := spansOf(b, buildtrace.KindLink); len(links) != 1 {
		t.Errorf("%d link spans, want 1", len(links))
	}
	for _, c := range b.Root.Children {
		if c.Kind != buildtrace.KindCompile && c.Kind != buildtrace.KindLink && c.Kind != buildtrace.KindExec && c.Kind != buildtrace.KindAsm {
			t.Logf("child of root: %s (%s)", c.Name, c.Kind)
		}
	}
	checkNesting(t, b.Root)
	if b.CriticalPath <= 0 || b.CriticalPath > b.Duration() || len(b.Critical) == 0 {
		t.Errorf("critical path %v of %v, %d spans", b.CriticalPath, b.Duration(), len(b.Critical))
	}
	if last := b.Critical[len(b.Critical)-1]; last.Kind != buildtrace.KindLink {
		t.Errorf("critical path ends with %s, want the link", last.Name)
	}
	if len(b.Slowest) == 0 {
		t.Error("no slowest packages")
	}

	var total int
	var walk func(*buildtrace.Span)
	walk = func(s *buildtrace.Span) {
		total++
		for _, c := range s.Children {
			walk(c)
		}
	}
	walk(b.Root)
	buildtrace.Emit(context.Background(), tp.Tracer(), w.clock, b)
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rcv.WaitSpans(t, 30*time.Second, func(s []otlptest.Span) bool { return len(s) >= total })
	if len(spans) != total {
		t.Fatalf("%d spans received, %d built", len(spans), total)
	}
	byID := map[string]otlptest.Span{}
	var rootSpan otlptest.Span
	for _, s := range spans {
		byID[s.SpanID] = s
		if s.ParentID == "" {
			rootSpan = s
		}
	}
	if rootSpan.Name != "go build" || rootSpan.Attrs["gopatrol.go.subcommand"] != "build" || rootSpan.Status != "OK" ||
		rootSpan.Attrs["user.id"] != fmt.Sprint(os.Getuid()) || rootSpan.Attrs["gopatrol.build.critical_path_s"] == "" {
		t.Errorf("root span %+v", rootSpan)
	}
	compiles := 0
	for _, s := range spans {
		if s.TraceID != rootSpan.TraceID {
			t.Errorf("span %s in trace %s, root's is %s", s.Name, s.TraceID, rootSpan.TraceID)
		}
		if s.Attrs["gopatrol.build.span_kind"] == buildtrace.KindCompile && s.Attrs["gopatrol.go.package"] != "" {
			compiles++
			if s.ParentID != rootSpan.SpanID {
				t.Errorf("compile span %s: parent %s, want the root", s.Name, byID[s.ParentID].Name)
			}
		}
		if p, ok := byID[s.ParentID]; ok && (s.Start.Before(p.Start) || s.End.After(p.End)) {
			t.Errorf("span %s [%v..%v] outside its parent %s [%v..%v]", s.Name, s.Start, s.End, p.Name, p.Start, p.End)
		}
	}
	if compiles != len(want) {
		t.Errorf("%d compile spans exported, go build -x compiled %d", compiles, len(want))
	}
	var out bytes.Buffer
	if err := buildtrace.Waterfall(&out, w.clock, b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "compile example.com/m/p0") || !strings.Contains(out.String(), "link") {
		t.Errorf("waterfall:\n%s", out.String())
	}
	t.Logf("waterfall:\n%s", out.String())
}

// A syntax error: the go command fails, so does the compile of the broken
// package, and both spans say so.
func TestBuildSyntaxError(t *testing.T) {
	w := newWorld(t, buildtrace.Config{}, false)
	dir := t.TempDir()
	writeModule(t, dir, 3, "p1")
	cmd := goCmd(t, dir, "build", "-o", filepath.Join(dir, "m.bin"), ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	root := cmd.Process.Pid
	if err := cmd.Wait(); err == nil {
		t.Fatal("go build of a syntax error succeeded")
	}
	b := w.build(t, root, time.Minute)
	if !b.Failed || b.Root.Exit == 0 || !b.Root.Failed() || b.Reason != "failed" {
		t.Errorf("root: failed=%v exit %d reason %q", b.Failed, b.Root.Exit, b.Reason)
	}
	var broken *buildtrace.Span
	for _, s := range spansOf(b, buildtrace.KindCompile) {
		if s.Package == "example.com/m/p1" {
			broken = s
		}
	}
	if broken == nil || !broken.Failed() || broken.Exit == 0 {
		t.Errorf("compile of example.com/m/p1: %+v\n%s", broken, stderr.String())
	}
	if spans := spansOf(b, buildtrace.KindLink); len(spans) != 0 {
		t.Errorf("%d link spans in a build that failed to compile", len(spans))
	}
}

// A tree whose child never exits is closed at the bound: the build is
// kept, marked incomplete, and the child's span is unfinished.
func TestTreeClosedAtBound(t *testing.T) {
	const bound = 2 * time.Second
	w := newWorld(t, buildtrace.Config{MaxAge: bound}, false)
	dir := t.TempDir()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("package main\n\n//go:generate %s 300\n\nfunc main() {}\n", sleep)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/g\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := goCmd(t, dir, "generate", ".")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	root := cmd.Process.Pid
	// The Builder's own ticker sweeps every bound/4.
	b := w.build(t, root, bound+30*time.Second)
	if !b.Incomplete || b.Reason != "incomplete" || !b.Root.Unfinished {
		t.Errorf("build incomplete=%v reason %q root unfinished=%v", b.Incomplete, b.Reason, b.Root.Unfinished)
	}
	var sl *buildtrace.Span
	for _, s := range spansOf(b, buildtrace.KindExec) {
		if s.Name == "sleep" {
			sl = s
		}
	}
	if sl == nil || !sl.Unfinished {
		t.Errorf("sleep span %+v, want unfinished", sl)
	}
	if b.Duration() < bound {
		t.Errorf("closed after %v, before the bound %v", b.Duration(), bound)
	}
	if st := w.b.Stats(); st.Expired == 0 {
		t.Errorf("stats %+v: no expired tree", st)
	}
}

// go mod download through a loopback proxy whose certificate no one
// trusts: the build fails, and the go command's span has a connect child
// to the proxy that succeeded and a failed TLS handshake child.
func TestDownloadUntrustedProxy(t *testing.T) {
	w := newWorld(t, buildtrace.Config{Paths: true}, true)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point
	srv.StartTLS()                                   // its own CA, trusted by no one
	defer srv.Close()
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	dir := t.TempDir()
	cmd := goCmd(t, dir, "mod", "download", "example.com/dep@v1.0.0")
	cmd.Env = append(cmd.Env, "GOPROXY="+srv.URL, "GONOSUMDB=*", "GOMODCACHE="+filepath.Join(dir, "modcache"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	root := cmd.Process.Pid
	if err := cmd.Wait(); err == nil || !strings.Contains(out.String(), "certificate") {
		t.Fatalf("go mod download through an untrusted proxy: err %v, output %s", err, out.String())
	}
	b := w.build(t, root, time.Minute)
	if !b.Failed || b.Root.Name != "go mod download" || !slices.Equal(b.Patterns, []string{"example.com/dep@v1.0.0"}) {
		t.Errorf("root %q patterns %q failed=%v", b.Root.Name, b.Patterns, b.Failed)
	}
	var conn, hs *buildtrace.Span
	for _, c := range spansOf(b, buildtrace.KindConnect) {
		if strconv.Itoa(c.Port) == port {
			conn = c
		}
	}
	for _, h := range spansOf(b, buildtrace.KindTLS) {
		if h.Outcome == string(tlsprobe.OutcomeFailed) {
			hs = h
		}
	}
	if conn == nil || conn.Outcome != "ok" || conn.Server != "127.0.0.1" {
		t.Errorf("connect span to port %s: %+v", port, conn)
	}
	if hs == nil || hs.ErrorType == "" || !hs.Failed() || hs.Server != "127.0.0.1" {
		t.Errorf("failed TLS handshake span: %+v", hs)
	}
	checkNesting(t, b.Root)
	if hs != nil {
		t.Logf("handshake span: %s %s error.type=%s in %v", hs.Name, hs.Server, hs.ErrorType, hs.Duration())
	}
}

// A go command started by a go command nests: go generate running
// `go list` gives a child span of kind go, with its own subcommand, under
// the generate root, in the same trace.
func TestNestedGoCommand(t *testing.T) {
	w := newWorld(t, buildtrace.Config{}, false)
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example.com/gen\n\ngo 1.22\n",
		"main.go": "package main\n\n//go:generate go list -f {{.Name}} .\n\nfunc main() {}\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := goCmd(t, dir, "generate", ".")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	root := cmd.Process.Pid
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go generate: %v\n%s", err, out.String())
	}
	b := w.build(t, root, time.Minute)
	if b.Root.Name != "go generate" {
		t.Errorf("root %q, want go generate", b.Root.Name)
	}
	var nested *buildtrace.Span
	for _, c := range b.Root.Children {
		if c.Kind == buildtrace.KindGo {
			nested = c
		}
	}
	if nested == nil || nested.Name != "go list" || nested.Subcommand != "list" || nested.Exit != 0 {
		t.Fatalf("nested go command under go generate: %+v; children %v", nested, names(b.Root.Children))
	}
	checkNesting(t, b.Root)
}

func names(spans []*buildtrace.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}
