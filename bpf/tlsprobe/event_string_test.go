package tlsprobe

import (
	"fmt"
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
		{&ClientHelloEvent{FD: 7, ClientHello: ClientHello{ServerName: "proxy.gopatrol.test"}},
			"TLS ClientHello to proxy.gopatrol.test on fd 7"},
		{&AlertEvent{FD: 3, Alert: Alert{Level: 2, Description: 48}, Name: "unknown_ca"},
			"TLS alert unknown_ca (level 2) on fd 3"},
	}
	for _, tt := range tests {
		if got := tt.ev.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
