package loopback

import (
	"net"
	"testing"
)

// UnusedAddr is a 127.0.0.1 address ("127.0.0.1:port") where nothing
// listens: a port that was just bound and released. Dialled, it is
// refused; a server the test starts may listen there.
func UnusedAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("bind a loopback port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		tb.Fatalf("release %s: %v", addr, err)
	}
	return addr
}
