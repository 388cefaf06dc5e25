package soak

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
	"github.com/gopatrol/gopatrol/plugins/host"
)

// bins are the programs the suite runs, built once: the agent, the probe
// plugin (with its manifest) and the opener that fails opens on purpose.
var bins struct {
	dir, agent, plugins, opener string
}

func TestMain(m *testing.M) {
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "gopatrol-soak")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	// The plugin host refuses files writable by group or others.
	if err := os.Chmod(dir, 0o755); err != nil {
		return 0, err
	}
	bins.dir = dir
	bins.agent = filepath.Join(dir, "gopatrol")
	bins.plugins = filepath.Join(dir, "plugins")
	bins.opener = filepath.Join(dir, openerName)
	if err := os.Mkdir(bins.plugins, 0o755); err != nil {
		return 0, err
	}
	for _, b := range []struct{ out, pkg string }{
		{bins.agent, "github.com/gopatrol/gopatrol/cmd/gopatrol"},
		{filepath.Join(bins.plugins, "gopatrol-probe-"+probeName), "github.com/gopatrol/gopatrol/plugins/host/testdata/testprobe"},
		{bins.opener, "github.com/gopatrol/gopatrol/agent/soak/testdata/opener"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		out, err := exec.CommandContext(ctx, "go", "build", "-o", b.out, b.pkg).CombinedOutput()
		cancel()
		if err != nil {
			return 0, fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	if err := host.WriteManifest(bins.plugins); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

const (
	// probeName is the plugin the suite supervises (the plugin host's
	// test probe, which answers as long as it lives).
	probeName = "soakprobe"
	// goName is the link to the real go through which the suite builds:
	// the sensors watch its trees (sensors.go_names) and no other.
	goName = "soakgo"
	// openerName is the program that fails opens; a tree of its own.
	openerName = "soakopen"
)

// proc is a running agent binary and what it logged.
type proc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	err  error

	mu    sync.Mutex
	lines []string
}

// maxLines bounds what the suite keeps of the agent's stderr.
const maxLines = 50000

func startAgent(t testing.TB, cfgFile string, env []string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(bins.agent, "agent", "--config", cfgFile, "--listen", "127.0.0.1:0")
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			if len(p.lines) < maxLines {
				p.lines = append(p.lines, sc.Text())
			}
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			log := p.log()
			if len(log) > 300 {
				log = log[len(log)-300:]
			}
			t.Logf("agent stderr (last %d lines):\n%s", len(log), strings.Join(log, "\n"))
		}
	})
	line := p.waitLog(t, "endpoints listening", time.Minute)
	var rec struct{ Addr string }
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Addr == "" {
		t.Fatalf("no address in %q: %v", line, err)
	}
	p.addr = rec.Addr
	return p
}

func (p *proc) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// logCount counts the log lines holding s.
func (p *proc) logCount(s string) int {
	n := 0
	for _, l := range p.log() {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

func (p *proc) waitLog(t testing.TB, s string, timeout time.Duration) string {
	t.Helper()
	var found string
	waitFor(t, timeout, "log line "+s, func() bool {
		for _, l := range p.log() {
			if strings.Contains(l, s) {
				found = l
				return true
			}
		}
		select {
		case <-p.done:
			t.Fatalf("agent exited (%v) before logging %q", p.err, s)
		default:
		}
		return false
	})
	return found
}

func (p *proc) get(path string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b)
}

// waitReady returns how long /readyz took to answer 200 from since.
func (p *proc) waitReady(t testing.TB, since time.Time) time.Duration {
	t.Helper()
	waitFor(t, 3*time.Minute, "/readyz 200", func() bool {
		code, _ := p.get("/readyz")
		return code == http.StatusOK
	})
	return time.Since(since)
}

// status is the part of /status the suite reads.
type status struct {
	Reloads map[string]int
	Rules   struct{ Rules int }
	Probes  []struct {
		Plugin string
		Up     bool
	}
}

func (p *proc) status(t testing.TB) status {
	t.Helper()
	var st status
	code, body := p.get("/status")
	if code != http.StatusOK {
		t.Fatalf("/status %d: %.300s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v", err)
	}
	return st
}

// stop sends sig and waits for the exit, bounded.
func (p *proc) stop(t testing.TB, sig syscall.Signal, timeout time.Duration) error {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("agent still running %v after %v", timeout, sig)
		return nil
	}
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eventually polls cond until it holds or timeout passes; for goroutines
// other than the test's, which must not call t.Fatal.
func eventually(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// usage is one sample of a process's memory and CPU, from /proc.
type usage struct {
	RSS int64         // bytes
	CPU time.Duration // user and system, since the start
}

// clockTicks is USER_HZ, fixed at 100 on Linux for /proc/PID/stat.
const clockTicks = 100

func sample(pid int) (usage, error) {
	var u usage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			u.RSS = kb << 10
		}
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The fields after the command's closing parenthesis; utime and
	// stime are the 14th and 15th of the line.
	rest := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(rest) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(rest))
	}
	ut, _ := strconv.ParseInt(rest[11], 10, 64)
	st, _ := strconv.ParseInt(rest[12], 10, 64)
	u.CPU = time.Duration(ut+st) * time.Second / clockTicks
	return u, nil
}

// children are the live (not zombie) processes running the executable
// exe whose parent is pid, or with any parent when pid is 0. By exe, not
// by name: every plugin's name starts "gopatrol-probe-", which is all of
// it the kernel keeps, and other tests on the machine run plugins too.
func children(pid int, exe string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		cpid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if path, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", cpid)); err != nil || path != exe {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cpid))
		if err != nil {
			continue
		}
		rest := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(rest) < 2 || rest[0] == "Z" {
			continue
		}
		if pid == 0 || rest[1] == strconv.Itoa(pid) {
			out = append(out, cpid)
		}
	}
	return out
}

func otlpEnv(endpoint string, interval, timeout time.Duration) []string {
	return []string{
		"OTEL_METRICS_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint,
		fmt.Sprintf("OTEL_METRIC_EXPORT_INTERVAL=%d", interval.Milliseconds()),
		fmt.Sprintf("OTEL_EXPORTER_OTLP_TIMEOUT=%d", timeout.Milliseconds()),
		"OTEL_TRACES_EXPORTER=none",
	}
}

// latest adds up the latest cumulative value of metric name over the
// points whose attributes include want: the last export that has the
// metric holds the totals.
func latest(reqs []otlptest.Request, name string, want map[string]string) (float64, uint64, bool) {
	for i := len(reqs) - 1; i >= 0; i-- {
		found := false
		var v float64
		var n uint64
		for _, p := range otlptest.Points(reqs[i : i+1]) {
			if p.Metric != name || !contains(p.Attrs, want) {
				continue
			}
			found = true
			v += p.Value
			n += p.Count
		}
		if found {
			return v, n, true
		}
	}
	return 0, 0, false
}

func contains(attrs, want map[string]string) bool {
	for k, v := range want {
		if attrs[k] != v {
			return false
		}
	}
	return true
}

// relay is a loopback TCP relay in front of a server: Down drops every
// connection and refuses new ones (the port stays the relay's, closed),
// Up listens on the same port again. It is how the suite takes the
// collector and the notification target away from the agent.
type relay struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func newRelay(t testing.TB, target string) *relay {
	t.Helper()
	r := &relay{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.Down)
	return r
}

func (r *relay) serve(ln net.Listener) {
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.pipe(c)
		}
	}()
}

func (r *relay) pipe(c net.Conn) {
	u, err := net.DialTimeout("tcp", r.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	r.mu.Lock()
	if r.ln == nil { // went down meanwhile
		r.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	r.conns[c], r.conns[u] = struct{}{}, struct{}{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	copyClose := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	go copyClose(u, c)
	go copyClose(c, u)
	wg.Wait()
	r.mu.Lock()
	delete(r.conns, c)
	delete(r.conns, u)
	r.mu.Unlock()
}

// Down closes the listener and every open connection.
func (r *relay) Down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for c := range r.conns {
		c.Close()
	}
}

// Up listens on the relay's port again.
func (r *relay) Up(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	// The port was ours a moment ago; another process taking it in
	// between is possible but not likely on loopback.
	for range 50 {
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("relay up again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

// goLink makes dir/soakgo, a link to the real go.
func goLink(t testing.TB, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	if goBin, err = filepath.EvalSymlinks(goBin); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, goName)
	if err := os.Symlink(goBin, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// run runs a command with a deadline, its output bounded, its process
// group killed at the end.
func run(ctx context.Context, timeout time.Duration, dir string, env []string, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.b, err
}

// limitedBuffer keeps the first 64 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
