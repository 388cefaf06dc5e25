package tlsprobe_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/gopatrol/gopatrol/agent/check/proxy/proxytest"
	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/bpf/bpftest"
	"github.com/gopatrol/gopatrol/bpf/tlsprobe"
)

// recorder keeps every event of a sensor.
type recorder struct {
	mu     sync.Mutex
	events []bpf.Event
	done   chan struct{}
}

func record(s *bpf.Sensor) *recorder {
	r := &recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ev := range s.Events() {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		}
	}()
	return r
}

// waitFor returns the first event (from index from on) that match accepts,
// waiting up to 5 s for the ring buffer to deliver it.
func (r *recorder) waitFor(from int, match func(bpf.Event) bool) bpf.Event {
	return r.waitForIn(5*time.Second, from, match)
}

func (r *recorder) waitForIn(d time.Duration, from int, match func(bpf.Event) bool) bpf.Event {
	deadline := time.Now().Add(d)
	for {
		r.mu.Lock()
		for _, ev := range r.events[min(from, len(r.events)):] {
			if match(ev) {
				r.mu.Unlock()
				return ev
			}
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) dump(t *testing.T, pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if h := ev.EventHeader(); int(h.PID) == pid || int(h.RootPID) == pid {
			t.Logf("event %s %+v", h.Type, ev)
		}
	}
}

func goBinary(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin", "go")
}

// TestGoModDownloadHandshake runs `go mod download` against a loopback
// HTTPS module proxy with the sensor and the TLS probes attached: once
// trusting the proxy's CA (handshake ok) and once without it (handshake
// failed, with the alert crypto/tls sends).
func TestGoModDownloadHandshake(t *testing.T) {
	bpftest.Require(t)
	goBin := goBinary(t)

	// Eager: a go command's first connect must not race the attachment of
	// the tree-scoped programs (bpf/scope.go).
	s, err := bpf.Open(bpf.Config{Eager: true})
	if err != nil {
		t.Fatalf("bpf.Open: %v", err)
	}
	defer s.Close()
	p, err := tlsprobe.Attach(s, tlsprobe.Config{GoBinaries: []string{goBin}})
	if err != nil {
		t.Fatalf("tlsprobe.Attach: %v", err)
	}
	if len(p.GoBinaries) != 1 || len(p.GoBinaries[0].Handshake.Rets) == 0 {
		t.Fatalf("probed Go binaries: %+v", p.GoBinaries)
	}
	rec := record(s)

	// Go sends no SNI for an IP literal: the proxy's certificate names
	// localhost, which /etc/hosts maps to 127.0.0.1.
	proxy := proxytest.New(t, proxytest.WithServerName("localhost"))
	proxy.Module("example.com/hello", "v1.0.0", map[string]string{"hello.go": "package hello\n"})
	_, port, err := net.SplitHostPort(proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	url := "https://localhost:" + port

	download := func(t *testing.T, trustCA bool) (pid int, out string, err error) {
		env := append(os.Environ(), "GOTOOLCHAIN=local", "GOMODCACHE="+proxytest.TempModCache(t))
		env = append(env, proxy.Env()...)
		env = append(env, "GOPROXY="+url)
		if !trustCA {
			env = append(env, "SSL_CERT_FILE="+filepath.Join(t.TempDir(), "none.pem"))
		}
		cmd := exec.Command(goBin, "mod", "download", "example.com/hello@v1.0.0")
		cmd.Dir = t.TempDir()
		cmd.Env = env
		b, err := cmd.CombinedOutput()
		return cmd.Process.Pid, string(b), err
	}

	t.Run("trusted", func(t *testing.T) {
		from := rec.len()
		pid, out, err := download(t, true)
		if err != nil {
			t.Fatalf("go mod download via %s: %v\n%s", url, err, out)
		}
		conn := rec.waitFor(from, func(ev bpf.Event) bool {
			c, ok := ev.(*bpf.ConnectEvent)
			return ok && int(c.PID) == pid && strconv.Itoa(int(c.Addr.Port())) == port
		})
		if conn == nil {
			rec.dump(t, pid)
			t.Errorf("no connect event from go (pid %d) to port %s", pid, port)
		}
		ev := rec.waitFor(from, func(ev bpf.Event) bool {
			h, ok := ev.(*tlsprobe.Handshake)
			return ok && int(h.PID) == pid
		})
		if ev == nil {
			rec.dump(t, pid)
			t.Fatalf("no TLS handshake event from go (pid %d)", pid)
		}
		h := ev.(*tlsprobe.Handshake)
		if h.Library != tlsprobe.LibraryGo || h.Outcome != tlsprobe.OutcomeOK || h.ServerName != "localhost" ||
			h.ErrorType != "" || h.Duration <= 0 || h.Duration > time.Minute || int(h.RootPID) != pid ||
			h.Peer.String() != "127.0.0.1:"+port {
			t.Errorf("handshake of go mod download: %+v, want go, ok, SNI localhost, root %d, peer 127.0.0.1:%s", h, pid, port)
		}
		if c, ok := conn.(*bpf.ConnectEvent); ok && c.Errno != 0 {
			t.Errorf("connect to the proxy: %+v, want established", c)
		}
		t.Logf("handshake: %v", h)
	})

	t.Run("CA left out", func(t *testing.T) {
		from := rec.len()
		pid, out, err := download(t, false)
		if err == nil || !strings.Contains(out, "certificate signed by unknown authority") {
			t.Fatalf("go mod download without the CA: err %v, output:\n%s\nwant an unknown-authority failure", err, out)
		}
		ev := rec.waitFor(from, func(ev bpf.Event) bool {
			h, ok := ev.(*tlsprobe.Handshake)
			return ok && int(h.PID) == pid
		})
		if ev == nil {
			rec.dump(t, pid)
			t.Fatalf("no TLS handshake event from go (pid %d)", pid)
		}
		h := ev.(*tlsprobe.Handshake)
		if h.Outcome != tlsprobe.OutcomeFailed || h.ServerName != "localhost" || h.ErrorType != "bad_certificate" ||
			h.Alert == nil || h.AlertSource != "sent" {
			t.Errorf("handshake without the CA: %+v alert %+v, want failed, SNI localhost, error type bad_certificate", h, h.Alert)
		}
		t.Logf("handshake: %s %s sni=%s error.type=%s in %v", h.Library, h.Outcome, h.ServerName, h.ErrorType, h.Duration)
	})

	curl, curlErr := exec.LookPath("curl")
	// curlIn runs curl through `go generate` in a scratch module, so that
	// it is a child of a go command: in a tree.
	curlIn := func(t *testing.T, args ...string) (goPID int, out string, err error) {
		dir := t.TempDir()
		gen := "package gen\n\n//go:generate " + curl + " " + strings.Join(args, " ") + "\n"
		if err := os.WriteFile(filepath.Join(dir, "gen.go"), []byte(gen), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module gen\n\ngo 1.22\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(goBin, "generate", ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=", "GOPROXY=off")
		b, err := cmd.CombinedOutput()
		return cmd.Process.Pid, string(b), err
	}
	libssl := func(t *testing.T) {
		t.Helper()
		bpftest.Need(t, "curl", curlErr)
		if len(p.LibSSL) == 0 {
			bpftest.Need(t, "libssl.so.3 probed", fmt.Errorf("skipped: %+v", p.Skipped))
		}
	}
	listURL := url + "/example.com/hello/@v/list"

	t.Run("libssl trusted", func(t *testing.T) {
		libssl(t)
		from := rec.len()
		root, out, err := curlIn(t, "-sS", "--fail", "-o", "/dev/null", "--cacert", proxy.CAFile(), listURL)
		if err != nil {
			t.Fatalf("curl through go generate: %v\n%s", err, out)
		}
		ev := rec.waitFor(from, func(ev bpf.Event) bool {
			h, ok := ev.(*tlsprobe.Handshake)
			return ok && int(h.RootPID) == root && h.Library == tlsprobe.LibraryLibSSL
		})
		if ev == nil {
			rec.dump(t, root)
			t.Fatalf("no libssl handshake in the tree of go generate (pid %d)", root)
		}
		h := ev.(*tlsprobe.Handshake)
		if h.Outcome != tlsprobe.OutcomeOK || h.ServerName != "localhost" || h.Duration <= 0 || int(h.PID) == root {
			t.Errorf("curl handshake: %+v, want ok, SNI localhost, pid of curl", h)
		}
		t.Logf("handshake: %s %s sni=%s in %v (pid %d)", h.Library, h.Outcome, h.ServerName, h.Duration, h.PID)
	})

	t.Run("libssl unknown CA over TLS 1.2", func(t *testing.T) {
		libssl(t)
		from := rec.len()
		root, out, err := curlIn(t, "-sS", "--fail", "-o", "/dev/null", "--tls-max", "1.2", listURL)
		if err == nil {
			t.Fatalf("curl without the proxy's CA succeeded:\n%s", out)
		}
		ev := rec.waitFor(from, func(ev bpf.Event) bool {
			h, ok := ev.(*tlsprobe.Handshake)
			return ok && int(h.RootPID) == root && h.Library == tlsprobe.LibraryLibSSL
		})
		if ev == nil {
			rec.dump(t, root)
			t.Fatalf("no libssl handshake in the tree of go generate (pid %d); curl said:\n%s", root, out)
		}
		h := ev.(*tlsprobe.Handshake)
		// OpenSSL writes its alert in plaintext under TLS 1.2.
		if h.Outcome != tlsprobe.OutcomeFailed || h.ServerName != "localhost" || h.ErrorType != "unknown_ca" || h.AlertSource != "wire" {
			t.Errorf("curl handshake without the CA: %+v, want failed, SNI localhost, unknown_ca from the wire", h)
		}
		t.Logf("handshake: %s %s sni=%s error.type=%s ssl_error=%d", h.Library, h.Outcome, h.ServerName, h.ErrorType, h.SSLError)
	})

	t.Run("other library ClientHello", func(t *testing.T) {
		// git's https helper uses GnuTLS on Debian: no handshake probe, but
		// its ClientHello on the socket still names the server.
		git, err := exec.LookPath("git")
		bpftest.Need(t, "git", err)
		from := rec.len()
		dir := t.TempDir()
		gen := "package gen\n\n//go:generate env GIT_SSL_CAINFO=" + proxy.CAFile() + " GIT_TERMINAL_PROMPT=0 " + git + " ls-remote " + url + "/repo.git\n"
		os.WriteFile(filepath.Join(dir, "gen.go"), []byte(gen), 0o644)
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module gen\n\ngo 1.22\n"), 0o644)
		cmd := exec.Command(goBin, "generate", ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=", "GOPROXY=off", "HOME="+dir)
		b, _ := cmd.CombinedOutput() // the proxy is no git server: ls-remote fails after the handshake
		ev := rec.waitFor(from, func(ev bpf.Event) bool {
			c, ok := ev.(*tlsprobe.ClientHelloEvent)
			return ok && int(c.RootPID) == cmd.Process.Pid
		})
		if ev == nil {
			rec.dump(t, cmd.Process.Pid)
			t.Fatalf("no ClientHello event in the tree of go generate (pid %d); output:\n%s", cmd.Process.Pid, b)
		}
		if c := ev.(*tlsprobe.ClientHelloEvent); c.ServerName != "localhost" || c.Peer.Port() == 0 {
			t.Errorf("git's ClientHello: %+v, want SNI localhost", c)
		}
	})

	t.Run("outside any tree", func(t *testing.T) {
		libssl(t)
		// Is this test process itself in a tree (a sensor that adopted the
		// running go test)? Then its children are too, and the test means
		// nothing.
		from := rec.len()
		probe := exec.Command("true")
		if err := probe.Run(); err != nil {
			t.Fatal(err)
		}
		if rec.waitForIn(time.Second, from, func(ev bpf.Event) bool { return int(ev.EventHeader().PID) == probe.Process.Pid }) != nil {
			bpftest.Need(t, "a test process outside every Go toolchain tree", errors.New("a child of this test was reported in a tree"))
		}
		cmd := exec.Command(curl, "-sS", "--fail", "-o", "/dev/null", "--cacert", proxy.CAFile(), listURL)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		if _, err := proxy.Client().Get(proxy.URL() + "/example.com/hello/@v/list"); err == nil {
			t.Fatal("the proxy's leaf names localhost only, yet 127.0.0.1 verified")
		}
		// A go command after them: once its events are in, theirs would be.
		marker, _, _ := curlIn(t, "--version")
		if rec.waitFor(from, func(ev bpf.Event) bool { return int(ev.EventHeader().RootPID) == marker }) == nil {
			t.Fatal("no event from the marker go command")
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, ev := range rec.events[from:] {
			h := ev.EventHeader()
			if int(h.PID) == cmd.Process.Pid || int(h.PID) == os.Getpid() {
				t.Errorf("event for a process outside any tree: %s %+v", h.Type, ev)
			}
		}
	})

	// Close detaches everything of ours: remember the kernel IDs first.
	var progIDs []ebpf.ProgramID
	for name, prog := range p.Programs() {
		info, err := prog.Info()
		if err != nil {
			t.Fatalf("program %s info: %v", name, err)
		}
		id, _ := info.ID()
		progIDs = append(progIDs, id)
	}
	linkIDs := p.LinkIDs()
	if len(linkIDs) == 0 {
		t.Fatal("no links recorded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("sensor Close: %v", err)
	}
	<-rec.done
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := stillLoaded(progIDs, linkIDs)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Close still in the kernel: %s", strings.Join(left, ", "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stillLoaded(progs []ebpf.ProgramID, links []link.ID) []string {
	var left []string
	for _, id := range progs {
		p, err := ebpf.NewProgramFromID(id)
		if err == nil {
			p.Close()
			left = append(left, "program "+strconv.Itoa(int(id)))
		} else if !errors.Is(err, os.ErrNotExist) {
			left = append(left, "program "+strconv.Itoa(int(id))+": "+err.Error())
		}
	}
	for _, id := range links {
		l, err := link.NewFromID(id)
		if err == nil {
			l.Close()
			left = append(left, "link "+strconv.Itoa(int(id)))
		} else if !errors.Is(err, os.ErrNotExist) {
			left = append(left, "link "+strconv.Itoa(int(id))+": "+err.Error())
		}
	}
	return left
}

func TestAttachRefusesNonGo(t *testing.T) {
	bpftest.Require(t)
	s, err := bpf.Open(bpf.Config{})
	if err != nil {
		t.Fatalf("bpf.Open: %v", err)
	}
	defer s.Close()
	notGo := filepath.Join(t.TempDir(), "go")
	if err := os.WriteFile(notGo, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := tlsprobe.Attach(s, tlsprobe.Config{GoBinaries: []string{notGo}})
	if err == nil {
		p.Close()
		t.Fatalf("Attach to %s: no error", notGo)
	}
	if !errors.Is(err, tlsprobe.ErrRefused) || !strings.Contains(err.Error(), notGo) {
		t.Fatalf("Attach to %s: %v, want a refusal naming it", notGo, err)
	}
}

func TestAttachDefaults(t *testing.T) {
	bpftest.Require(t)
	goPath, err := exec.LookPath("go")
	bpftest.Need(t, "go on PATH", err)
	goPath, _ = filepath.EvalSymlinks(goPath)
	s, err := bpf.Open(bpf.Config{})
	if err != nil {
		t.Fatalf("bpf.Open: %v", err)
	}
	defer s.Close()
	p, err := tlsprobe.Attach(s, tlsprobe.Config{})
	if err != nil {
		t.Fatalf("tlsprobe.Attach with defaults: %v", err)
	}
	var probed []string
	for _, b := range p.GoBinaries {
		probed = append(probed, b.Path)
	}
	if len(probed) == 0 || probed[0] != goPath {
		t.Errorf("default Go binaries probed: %q (skipped %+v), want %s first", probed, p.Skipped, goPath)
	}
	if len(p.LibSSL) == 0 && len(p.Skipped) == 0 {
		t.Error("libssl neither probed nor skipped with a reason")
	}
	t.Logf("probed %q and %q; skipped %+v", probed, p.LibSSL, p.Skipped)
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestAttachNoSocket(t *testing.T) {
	bpftest.Require(t)
	s, err := bpf.Open(bpf.Config{})
	if err != nil {
		t.Fatalf("bpf.Open: %v", err)
	}
	defer s.Close()
	goBin := goBinary(t)
	for _, noSocket := range []bool{false, true} {
		p, err := tlsprobe.Attach(s, tlsprobe.Config{GoBinaries: []string{goBin}, NoLibSSL: true, NoSocket: noSocket})
		if err != nil {
			t.Fatalf("Attach(NoSocket: %v): %v", noSocket, err)
		}
		b := p.GoBinaries[0]
		want := len(b.Handshake.Rets) + 1 // RETs and the entry
		if b.Alert != nil {
			want++
		}
		// The socket program's link is the sensor's (AttachWhileTrees).
		if got := len(p.LinkIDs()); got != want {
			t.Errorf("NoSocket %v: %d links, want %d", noSocket, got, want)
		}
		if _, loaded := p.Programs()["tls_tcp_sendmsg"]; loaded == noSocket {
			t.Errorf("NoSocket %v: socket program loaded %v", noSocket, loaded)
		}
		p.Close()
	}
}
