package tlsprobe_test

import (
	"errors"
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
	deadline := time.Now().Add(5 * time.Second)
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

	s, err := bpf.Open(bpf.Config{})
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
			h.ErrorType != "" || h.Duration <= 0 || h.Duration > time.Minute || int(h.RootPID) != pid {
			t.Errorf("handshake of go mod download: %+v, want go, ok, SNI localhost, root %d", h, pid)
		}
		t.Logf("handshake: %s %s sni=%s in %v (fd %d)", h.Library, h.Outcome, h.ServerName, h.Duration, h.FD)
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

	t.Run("not in a tree", func(t *testing.T) {
		// This test binary handshakes with the same proxy: it is no go
		// process (nor, unless the sensor adopted the running go test, a
		// descendant of one), so nothing may be reported for it.
		if _, err := proxy.Client().Get(proxy.URL() + "/example.com/hello/@v/list"); err != nil {
			t.Fatal(err)
		}
		self := os.Getpid()
		ev := rec.waitFor(0, func(ev bpf.Event) bool {
			h := ev.EventHeader()
			return int(h.PID) == self && (h.Type >= tlsprobe.TypeHandshake && h.Type <= tlsprobe.TypeAlert)
		})
		if ev != nil {
			var root bpf.Event = rec.waitFor(0, func(e bpf.Event) bool { return int(e.EventHeader().PID) == self })
			t.Logf("first event of this process: %+v (tree root %d)", root, ev.EventHeader().RootPID)
			if ev.EventHeader().RootPID == 0 {
				t.Errorf("TLS event for a process outside any tree: %+v", ev)
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

func TestAttachRefusesStrippedGo(t *testing.T) {
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
