package tlsprobe

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/bpf"
)

// captureClientHello returns the first TLS record a real crypto/tls client
// writes: its ClientHello.
func captureClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := tls.Client(client, cfg)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Handshake() // fails once the server side closes
		client.Close()
	}()
	server.SetDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(server, hdr); err != nil {
		t.Fatalf("read record header: %v", err)
	}
	rec := make([]byte, 5+int(binary.BigEndian.Uint16(hdr[3:])))
	copy(rec, hdr)
	if _, err := io.ReadFull(server, rec[5:]); err != nil {
		t.Fatalf("read record: %v", err)
	}
	server.Close()
	<-done
	return rec
}

func TestParseClientHelloReal(t *testing.T) {
	rec := captureClientHello(t, &tls.Config{ServerName: "proxy.gopatrol.test", NextProtos: []string{"h2", "http/1.1"}})
	ch, err := ParseClientHello(rec)
	if err != nil {
		t.Fatalf("ParseClientHello(%d-byte record): %v", len(rec), err)
	}
	if ch.ServerName != "proxy.gopatrol.test" || ch.Truncated {
		t.Errorf("server name %q truncated %v, want proxy.gopatrol.test, false", ch.ServerName, ch.Truncated)
	}
	if !slices.Equal(ch.ALPN, []string{"h2", "http/1.1"}) {
		t.Errorf("ALPN %q", ch.ALPN)
	}
	if !slices.Contains(ch.SupportedVersions, tls.VersionTLS13) || ch.Version != tls.VersionTLS12 {
		t.Errorf("versions %#x, legacy %#x", ch.SupportedVersions, ch.Version)
	}

	// What the kernel captures: the first 512 bytes. Go's hybrid key share
	// makes the record much longer, but the server name comes first.
	if len(rec) <= helloMax {
		t.Fatalf("ClientHello is %d bytes; the truncation case needs more than %d", len(rec), helloMax)
	}
	ch, err = ParseClientHello(rec[:helloMax])
	if err != nil || ch.ServerName != "proxy.gopatrol.test" || !ch.Truncated {
		t.Errorf("first %d bytes: %+v, %v; want the server name and Truncated", helloMax, ch, err)
	}

	// Every shorter prefix: a result or an error, never a panic, never a
	// partial server name.
	for n := 0; n < len(rec); n++ {
		ch, err := ParseClientHello(rec[:n])
		if err == nil && ch.ServerName != "" && ch.ServerName != "proxy.gopatrol.test" {
			t.Fatalf("prefix %d: server name %q", n, ch.ServerName)
		}
	}

	// No SNI for an IP literal, as crypto/tls does.
	ch, err = ParseClientHello(captureClientHello(t, &tls.Config{ServerName: "127.0.0.1"}))
	if err != nil || ch.ServerName != "" {
		t.Errorf("IP literal: %+v, %v; want no server name", ch, err)
	}
}

func TestParseClientHelloBad(t *testing.T) {
	rec := captureClientHello(t, &tls.Config{ServerName: "example.test"})
	badName := bytes.Replace(bytes.Clone(rec), []byte("example.test"), []byte("exa\x00ple.test"), 1)
	tests := []struct {
		name string
		in   []byte
		want error // nil: any error
	}{
		{"empty", nil, ErrNotClientHello},
		{"application data", []byte{0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5}, ErrNotClientHello},
		{"ServerHello", append([]byte{0x16, 3, 3, 0, 4, 0x02, 0, 0, 0}, rec[9:]...), ErrNotClientHello},
		{"SSLv2 version", []byte{0x16, 2, 0, 0, 1, 1}, ErrNotClientHello},
		{"garbage", bytes.Repeat([]byte{0xff}, 600), ErrNotClientHello},
		{"control byte in name", badName, nil},
	}
	for _, tt := range tests {
		ch, err := ParseClientHello(tt.in)
		if err == nil {
			t.Errorf("%s: got %+v, want an error", tt.name, ch)
			continue
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestParseAlert(t *testing.T) {
	a, err := ParseAlert([]byte{0x15, 3, 3, 0, 2, 2, 48})
	if err != nil || a != (Alert{2, 48}) || a.Name() != "unknown_ca" {
		t.Errorf("ParseAlert = %+v %q, %v", a, a.Name(), err)
	}
	if AlertName(42) != "bad_certificate" || AlertName(250) != "alert_250" {
		t.Errorf("AlertName(42) = %q, AlertName(250) = %q", AlertName(42), AlertName(250))
	}
	for _, b := range [][]byte{nil, {0x15, 3, 3, 0, 2, 2}, {0x15, 3, 3, 0, 3, 2, 48, 0}, {0x16, 3, 3, 0, 2, 2, 48}} {
		if _, err := ParseAlert(b); err == nil {
			t.Errorf("ParseAlert(% x): no error", b)
		}
	}
}

func FuzzParseClientHello(f *testing.F) {
	rec := captureClientHello(f, &tls.Config{ServerName: "proxy.gopatrol.test", NextProtos: []string{"h2"}})
	f.Add(rec)
	f.Add(rec[:helloMax])
	f.Add(rec[:60])
	f.Add([]byte{0x16, 3, 1, 0, 0})
	f.Add([]byte{0x16, 3, 1, 0xff, 0xff, 1, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := ParseClientHello(b)
		if err == nil && ch == nil {
			t.Fatal("nil ClientHello without error")
		}
		if err == nil && ch.ServerName != "" && !validHostName([]byte(ch.ServerName)) {
			t.Fatalf("invalid server name %q accepted", ch.ServerName)
		}
	})
}

// handshakeRecord builds a TLS_EV_HANDSHAKE record as the object lays it out.
func handshakeRecord(tb testing.TB, lib, outcome, alertLevel, alertDesc, alertSource byte, sslErr int32, hello []byte) []byte {
	hello = hello[:min(len(hello), helloMax)]
	return tlsRecord(tb, TypeHandshake, "tls_handshake_event", peerFields(map[string]any{
		"duration_ns": uint64(15 * time.Millisecond), "conn_id": uint64(0xc000123456), "ssl_err": sslErr,
		"library": lib, "outcome": outcome, "alert_level": alertLevel, "alert_desc": alertDesc,
		"alert_source": alertSource, "hello_len": len(hello), "hello": hello,
	}, "peer", "192.0.2.7:443"))
}

func TestDecodeHandshake(t *testing.T) {
	hello := captureClientHello(t, &tls.Config{ServerName: "proxy.gopatrol.test"})
	tests := []struct {
		name                       string
		raw                        []byte
		lib                        Library
		outcome                    Outcome
		serverName, errType, alert string
	}{
		{"go ok", handshakeRecord(t, 1, 1, 0, 0, 0, 0, hello), LibraryGo, OutcomeOK, "proxy.gopatrol.test", "", ""},
		{"go bad cert", handshakeRecord(t, 1, 2, 2, 42, 1, 0, hello), LibraryGo, OutcomeFailed, "proxy.gopatrol.test", "bad_certificate", "sent"},
		{"libssl unknown ca on the wire", handshakeRecord(t, 2, 2, 2, 48, 2, 1, nil), LibraryLibSSL, OutcomeFailed, "", "unknown_ca", "wire"},
		{"libssl SSL error", handshakeRecord(t, 2, 2, 0, 0, 0, 1, nil), LibraryLibSSL, OutcomeFailed, "", "SSL_ERROR_SSL", ""},
		{"unknown cause", handshakeRecord(t, 1, 2, 0, 0, 0, 0, []byte{1, 2, 3}), LibraryGo, OutcomeFailed, "", OtherError, ""},
	}
	for _, tt := range tests {
		ev, err := bpf.Decode(tt.raw)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		h, ok := ev.(*Handshake)
		if !ok {
			t.Fatalf("%s: decoded %T", tt.name, ev)
		}
		if h.PID != 4242 || h.RootPID != 4200 || h.Library != tt.lib || h.Outcome != tt.outcome ||
			h.ServerName != tt.serverName || h.ErrorType != tt.errType || h.AlertSource != tt.alert ||
			h.Duration != 15*time.Millisecond || h.Peer.String() != "192.0.2.7:443" {
			t.Errorf("%s: %+v", tt.name, h)
		}
	}
	bad := handshakeRecord(t, 9, 1, 0, 0, 0, 0, nil)
	if _, err := bpf.Decode(bad); err == nil {
		t.Error("library 9 decoded without error")
	}
}

func FuzzDecodeTLSEvents(f *testing.F) {
	hello := captureClientHello(f, &tls.Config{ServerName: "proxy.gopatrol.test"})
	f.Add(uint16(TypeHandshake), handshakeRecord(f, 1, 2, 2, 42, 1, 0, hello)[bpf.HeaderSize:])
	f.Add(uint16(TypeClientHello), helloRecord(f, "[2001:db8::1]:443", helloMax, hello)[bpf.HeaderSize:])
	f.Add(uint16(TypeAlert), alertRecord(f, "[2001:db8::1]:443", 2, 48)[bpf.HeaderSize:])
	f.Add(uint16(TypeHandshake), []byte{1})
	f.Fuzz(func(t *testing.T, typ uint16, body []byte) {
		raw := make([]byte, bpf.HeaderSize+len(body))
		binary.LittleEndian.PutUint16(raw[0:], uint16(TypeHandshake)+typ%3)
		binary.LittleEndian.PutUint16(raw[2:], uint16(min(len(raw), 0xffff)))
		copy(raw[bpf.HeaderSize:], body)
		ev, err := bpf.Decode(raw)
		if err == nil && ev == nil {
			t.Fatal("nil event without error")
		}
	})
}

func helloRecord(tb testing.TB, peer string, n int, hello []byte) []byte {
	return tlsRecord(tb, TypeClientHello, "tls_hello_event", peerFields(map[string]any{
		"hello_len": n, "hello": hello,
	}, "peer", peer))
}

func alertRecord(tb testing.TB, peer string, level, desc byte) []byte {
	return tlsRecord(tb, TypeAlert, "tls_alert_event", peerFields(map[string]any{
		"level": level, "desc": desc,
	}, "peer", peer))
}

func TestDecodeHelloAndAlert(t *testing.T) {
	hello := captureClientHello(t, &tls.Config{ServerName: "sum.gopatrol.test"})
	ev, err := bpf.Decode(helloRecord(t, "[2001:db8::1]:8443", helloMax, hello))
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := ev.(*ClientHelloEvent); !ok || c.ServerName != "sum.gopatrol.test" || c.Peer.String() != "[2001:db8::1]:8443" || c.PID != 4242 || c.Header.Type.String() != "tls_client_hello" {
		t.Errorf("ClientHello event: %+v", ev)
	}
	if _, err := bpf.Decode(helloRecord(t, "", 100, nil)); err == nil {
		t.Error("a ClientHello event holding zeros decoded without error")
	}
	ev, err = bpf.Decode(alertRecord(t, "", 2, 48)) // peer unknown: family 0
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := ev.(*AlertEvent); !ok || a.Name != "unknown_ca" || a.Level != 2 || a.Peer.IsValid() {
		t.Errorf("alert event: %+v", ev)
	}
	le := binary.LittleEndian
	for _, typ := range []bpf.EventType{TypeHandshake, TypeClientHello, TypeAlert} {
		b := make([]byte, bpf.HeaderSize+3)
		le.PutUint16(b[0:], uint16(typ))
		le.PutUint16(b[2:], uint16(len(b)))
		if _, err := bpf.Decode(b); err == nil {
			t.Errorf("%s: 3-byte body decoded without error", typ)
		}
	}
}
