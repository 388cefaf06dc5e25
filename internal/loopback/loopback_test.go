package loopback

import (
	"net"
	"strings"
	"testing"
	"time"
)

// An unused address is on loopback, refuses a dial, and can be listened on.
func TestUnusedAddr(t *testing.T) {
	addr := UnusedAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("%s is not on 127.0.0.1", addr)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("something listens on %s", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	l.Close()
}
