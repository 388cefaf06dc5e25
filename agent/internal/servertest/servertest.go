package servertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/bpf/bpftest"
	"github.com/gopatrol/gopatrol/internal/loopback"
)

// startTimeout bounds how long a server may take to answer after start.
const startTimeout = 60 * time.Second

// Server is one running server.
type Server struct {
	// Addr is 127.0.0.1:port.
	Addr string
	// URL is http://Addr for the HTTP servers.
	URL string
	// Dir is the server's data directory, removed at cleanup.
	Dir string

	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// need finds a binary, skipping or failing tb (see the package doc).
func need(tb testing.TB, bin, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(bin)
	bpftest.Need(tb, fmt.Sprintf("%s (Debian package %s; `make deps` installs it)", bin, pkg), err)
	return p
}

// needRoot skips or fails tb unless it runs as root.
func needRoot(tb testing.TB, why string) {
	tb.Helper()
	var err error
	if os.Geteuid() != 0 {
		err = errors.New("not root")
	}
	bpftest.Need(tb, "root, "+why, err)
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// tempDir makes a data directory outside t.TempDir (whose parents are
// 0700 and so closed to a server running as its own user), removed at
// cleanup.
func tempDir(tb testing.TB, name string) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "gopatrol-"+name+"-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// start runs argv as a server whose output goes to a log file in dir. At
// cleanup it gets stop, then SIGKILL (with its whole process group) if it
// has not exited after 5 s.
func start(tb testing.TB, name, dir, addr string, stop syscall.Signal, argv ...string) *Server {
	tb.Helper()
	s := &Server{Addr: addr, URL: "http://" + addr, Dir: dir, name: name, logPath: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(s.logPath)
	if err != nil {
		tb.Fatal(err)
	}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		tb.Fatalf("starting %s: %v", name, err)
	}
	logf.Close()
	go func() { s.waitErr = s.cmd.Wait(); close(s.exited) }()
	tb.Cleanup(func() {
		pgid := s.cmd.Process.Pid
		_ = syscall.Kill(-pgid, stop)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			tb.Logf("%s did not stop on %v in 5s: killed", name, stop)
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.exited
	})
	return s
}

// Log is the tail of the server's output, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// waitFor polls ready until it returns nil, the server exits, or
// startTimeout passes; then it fails tb with the server's log.
func (s *Server) waitFor(tb testing.TB, ready func() error) {
	tb.Helper()
	begin := time.Now()
	deadline := begin.Add(startTimeout)
	for {
		err := ready()
		if err == nil {
			tb.Logf("%s ready on %s after %s", s.name, s.Addr, time.Since(begin).Round(time.Millisecond))
			return
		}
		select {
		case <-s.exited:
			tb.Fatalf("%s exited before it was ready (%v):\n%s", s.name, s.waitErr, s.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready after %s: %v\n%s", s.name, startTimeout, err, s.Log())
		}
	}
}

// httpReady is a readiness probe: GET url answers 200.
func httpReady(url string) func() error {
	client := &http.Client{Timeout: 2 * time.Second}
	return func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// run runs a set-up command to completion, under a deadline, with its
// process group killed if it overstays and its output bounded.
func run(tb testing.TB, env []string, argv ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out boundedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	begin := time.Now()
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%v: %v\n%s", argv, err, out.String())
	}
	tb.Logf("%s took %s", filepath.Base(argv[0]), time.Since(begin).Round(time.Millisecond))
	return out.String()
}

// boundedBuffer keeps the first 64 KiB written to it.
type boundedBuffer struct{ bytes.Buffer }

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// Alertmanager starts prometheus-alertmanager with one receiver that
// drops everything (the tests read alerts and silences back through the
// v2 API) and clustering off.
func Alertmanager(tb testing.TB) *Server {
	tb.Helper()
	bin := need(tb, "prometheus-alertmanager", "prometheus-alertmanager")
	dir := tempDir(tb, "alertmanager")
	cfg := filepath.Join(dir, "alertmanager.yml")
	writeFile(tb, cfg, "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
	addr := loopback.UnusedAddr(tb)
	s := start(tb, "alertmanager", dir, addr, syscall.SIGTERM, bin,
		"--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=warn")
	s.waitFor(tb, httpReady(s.URL+"/-/ready"))
	return s
}

// Prometheus starts prometheus scraping targets (host:port, path
// /metrics) every second.
func Prometheus(tb testing.TB, targets ...string) *Server {
	tb.Helper()
	bin := need(tb, "prometheus", "prometheus")
	dir := tempDir(tb, "prometheus")
	cfg := filepath.Join(dir, "prometheus.yml")
	conf := "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: ["
	for i, t := range targets {
		if i > 0 {
			conf += ", "
		}
		conf += strconv.Quote(t)
	}
	writeFile(tb, cfg, conf+"]\n")
	addr := loopback.UnusedAddr(tb)
	s := start(tb, "prometheus", dir, addr, syscall.SIGTERM, bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	s.waitFor(tb, httpReady(s.URL+"/-/ready"))
	return s
}
