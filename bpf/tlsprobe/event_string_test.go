package tlsprobe

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestEventStrings(t *testing.T) {
	tests := []struct {
		ev   fmt.Stringer
		want string
	}{
		{&Handshake{Library: LibraryGo, Outcome: OutcomeOK, ServerName: "localhost", Duration: 12345 * time.Microsecond},
			"TLS localhost ok in 12.3ms (go)"},
		{&Handshake{Library: LibraryLibSSL, Outcome: OutcomeFailed, ErrorType: "unknown_ca", Duration: time.Millisecond},
			"TLS (no SNI) failed: unknown_ca in 1ms (libssl)"},
		{&Handshake{Library: LibraryGo, Outcome: OutcomeOK, ServerName: "localhost", Peer: netip.MustParseAddrPort("127.0.0.1:8443"), Duration: time.Millisecond},
			"TLS localhost (127.0.0.1:8443) ok in 1ms (go)"},
		{&ClientHelloEvent{Peer: netip.MustParseAddrPort("127.0.0.1:443"), ClientHello: ClientHello{ServerName: "proxy.gopatrol.test"}},
			"TLS ClientHello to proxy.gopatrol.test at 127.0.0.1:443"},
		{&AlertEvent{Alert: Alert{Level: 2, Description: 48}, Name: "unknown_ca"},
			"TLS alert unknown_ca (level 2) to (unknown peer)"},
	}
	for _, tt := range tests {
		if got := tt.ev.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
