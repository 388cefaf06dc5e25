package bpf

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/bpf/bpftest"
)

// The test binary doubles as the workload: copied under the name "go" it
// starts a tree, under any other name it does not, and the syscalls are
// the same.
const helperEnv = "GOPATROL_BPF_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "workload":
		os.Exit(workload())
	case "fail-opens":
		os.Exit(failOpens())
	case "dial-when":
		os.Exit(dialWhen())
	case "exit":
		// A go command that fails on its flags: gone within milliseconds.
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", os.Getenv(helperEnv))
		os.Exit(3)
	}
}

// workload fails a mkdir with EACCES (run as nobody) and an open with
// ENOENT under $DIR, connects to $ADDR and to the closed port $REFUSED (if
// set) and execs /bin/true.
func workload() int {
	dir := os.Getenv("DIR")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); !errors.Is(err, syscall.EACCES) {
		fmt.Fprintln(os.Stderr, "mkdir: want EACCES, got", err)
		return 1
	}
	if _, err := os.Open(filepath.Join(dir, "missing")); !errors.Is(err, syscall.ENOENT) {
		fmt.Fprintln(os.Stderr, "open: want ENOENT, got", err)
		return 1
	}
	if addr := os.Getenv("ADDR"); addr != "" {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c.Close()
	}
	if addr := os.Getenv("REFUSED"); addr != "" {
		if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
			fmt.Fprintln(os.Stderr, "dial", addr, ": want ECONNREFUSED, got", err)
			return 1
		}
	}
	if err := exec.Command("/bin/true").Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// dialWhen waits until the file $READY exists, then connects to $ADDR.
func dialWhen() int {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(os.Getenv("READY")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "no", os.Getenv("READY"), "after 10s")
			return 1
		}
	}
	c, err := net.Dial("tcp", os.Getenv("ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c.Close()
	return 0
}

// failOpens tries $N times to create $DIR/f, which fails with EACCES for
// nobody, and prints how many failed so.
func failOpens() int {
	n, _ := strconv.Atoi(os.Getenv("N"))
	path := filepath.Join(os.Getenv("DIR"), "f")
	failed := 0
	for range n {
		fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_CLOEXEC, 0o644)
		if err == syscall.EACCES {
			failed++
		} else if err == nil {
			syscall.Close(fd)
		}
	}
	fmt.Println(failed)
	return 0
}

// acceptor listens on 127.0.0.1 and closes every connection it accepts.
func acceptor(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln
}

// helperDir makes a directory every user can enter, removed at the end.
func helperDir(tb testing.TB) string {
	tb.Helper()
	d, err := os.MkdirTemp("", "gopatrol-bpf-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	return d
}

// helperBinary copies the test binary into dir under name.
func helperBinary(tb testing.TB, dir, name string) string {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(dir, name)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, src); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
	return dst
}

func nobody(tb testing.TB) *syscall.Credential {
	tb.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		bpftest.Need(tb, "user nobody", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// openSensor opens a sensor for the test and closes it at the end.
func openSensor(tb testing.TB, cfg Config) *Sensor {
	tb.Helper()
	bpftest.Require(tb)
	s, err := Open(cfg)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// collector keeps every event of a sensor. Other toolchain trees on the
// machine show up too: tests filter by the root pid they started.
type collector struct {
	mu   sync.Mutex
	evs  []Event
	done chan struct{}
}

func collect(s *Sensor) *collector {
	c := &collector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ev := range s.Events() {
			c.mu.Lock()
			c.evs = append(c.evs, ev)
			c.mu.Unlock()
		}
	}()
	return c
}

// tree returns the events of the tree rooted at root, waiting until the
// root's exit event has arrived (it comes last: the go command waits for
// its children) and a little longer for other CPUs' records.
func (c *collector) tree(tb testing.TB, root int) []Event {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var out []Event
		exited := false
		c.mu.Lock()
		for _, ev := range c.evs {
			h := ev.EventHeader()
			if h.RootPID == uint32(root) {
				out = append(out, ev)
				if x, ok := ev.(*ExitEvent); ok && x.PID == uint32(root) {
					exited = true
				}
			}
		}
		c.mu.Unlock()
		if exited {
			time.Sleep(200 * time.Millisecond)
			if n := len(c.treeNow(root)); n != len(out) {
				continue
			}
			return out
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no exit event of tree root %d after 5s (%d events of the tree so far)", root, len(out))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *collector) treeNow(root int) []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Event
	for _, ev := range c.evs {
		if ev.EventHeader().RootPID == uint32(root) {
			out = append(out, ev)
		}
	}
	return out
}

func (c *collector) all() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.evs...)
}
