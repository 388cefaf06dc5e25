package tlsprobe

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/gopatrol/gopatrol/bpf"
)

// Event types of tls.bpf.c (enum tls_event_type), in the range the sensor
// reserves for the TLS probes.
const (
	TypeHandshake   = bpf.FirstExtensionType     // 16
	TypeClientHello = bpf.FirstExtensionType + 1 // 17
	TypeAlert       = bpf.FirstExtensionType + 2 // 18
)

func init() {
	bpf.RegisterDecoder(TypeHandshake, "tls_handshake", decodeHandshake)
	bpf.RegisterDecoder(TypeClientHello, "tls_client_hello", decodeClientHello)
	bpf.RegisterDecoder(TypeAlert, "tls_alert", decodeAlert)
}

// Library says which TLS implementation made a handshake.
type Library string

const (
	LibraryGo     Library = "go"
	LibraryLibSSL Library = "libssl"
)

// Outcome of a handshake.
type Outcome string

const (
	OutcomeOK     Outcome = "ok"
	OutcomeFailed Outcome = "failed"
)

// OtherError is the error.type of a failed handshake whose cause the kernel
// did not see (no alert, no SSL_get_error code), as OTel semantic
// conventions name an unknown error type.
const OtherError = "_OTHER"

// Handshake is one client TLS handshake by a process in a Go toolchain tree.
type Handshake struct {
	bpf.Header
	Library Library `json:"library"`
	Outcome Outcome `json:"outcome"`
	// ServerName is the SNI of the ClientHello the handshake wrote; empty
	// when it sent none (Go sends none for IP literals) or it was not seen.
	ServerName string `json:"server_name,omitempty"`
	// ErrorType is set when the handshake failed: the alert's RFC name
	// (e.g. "bad_certificate", "unknown_ca"), an SSL_ERROR_* name for
	// libssl, or "_OTHER".
	ErrorType string `json:"error_type,omitempty"`
	// Alert is the alert the client sent (or wrote in plaintext) during the
	// handshake, if any; AlertSource says where it was seen.
	Alert       *Alert        `json:"alert,omitempty"`
	AlertSource string        `json:"alert_source,omitempty"`
	Duration    time.Duration `json:"duration_ns"`
	// Peer is the server the ClientHello was sent to, the zero value when
	// no ClientHello was seen.
	Peer netip.AddrPort `json:"peer,omitzero"`
	// Conn identifies the connection within the process: the goroutine
	// (Go) or SSL object (libssl) address.
	Conn        uint64       `json:"conn"`
	SSLError    int          `json:"ssl_error,omitempty"`
	ClientHello *ClientHello `json:"client_hello,omitempty"`
}

// ClientHelloEvent is a ClientHello written by a tree process outside any
// probed handshake (another TLS library, or a Go binary not attached).
type ClientHelloEvent struct {
	bpf.Header
	Peer netip.AddrPort `json:"peer,omitzero"`
	ClientHello
}

// AlertEvent is a plaintext alert written by a tree process outside any
// probed handshake.
type AlertEvent struct {
	bpf.Header
	Peer netip.AddrPort `json:"peer,omitzero"`
	Alert
	Name string `json:"name"`
}

// Layouts of the C records (c/tls.bpf.c) after the header: offsets in the
// body a Decoder gets. TestLayoutsMatchObject checks every one, and every
// size, against the BTF of the committed object.
const (
	helloMax = 512

	// struct tls_handshake_event. ret is not decoded: outcome says the same.
	hsDuration, hsConn, hsRet, hsSSLError                          = 0, 8, 16, 20
	hsLibrary, hsOutcome, hsAlertLevel, hsAlertDesc, hsAlertSource = 24, 25, 26, 27, 28
	hsHelloLen, hsPeer, hsHello                                    = 30, 32, 52
	handshakeBodySize                                              = hsHello + helloMax + 4 // padded to 8 bytes

	// struct tls_hello_event
	helloPeer, helloLen, helloData, helloBodySize = 0, bpf.PeerSize, bpf.PeerSize + 4, helloData + helloMax

	// struct tls_alert_event
	alertPeer, alertLevel, alertDesc, alertBodySize = 0, bpf.PeerSize, bpf.PeerSize + 1, bpf.PeerSize + 4
)

var sslErrors = map[int32]string{
	1: "SSL_ERROR_SSL", 5: "SSL_ERROR_SYSCALL", 6: "SSL_ERROR_ZERO_RETURN",
}

func shortErr(h bpf.Header, n, want int) error {
	return fmt.Errorf("decode %s event: body %d bytes, want %d", h.Type, n, want)
}

func decodeHandshake(h bpf.Header, b []byte) (bpf.Event, error) {
	if len(b) < handshakeBodySize {
		return nil, shortErr(h, len(b), handshakeBodySize)
	}
	le := binary.LittleEndian
	e := &Handshake{
		Header:   h,
		Duration: time.Duration(le.Uint64(b[hsDuration:])),
		Conn:     le.Uint64(b[hsConn:]),
		SSLError: int(int32(le.Uint32(b[hsSSLError:]))),
		Peer:     bpf.DecodePeer(b[hsPeer : hsPeer+bpf.PeerSize]),
	}
	switch b[hsLibrary] {
	case 1:
		e.Library = LibraryGo
	case 2:
		e.Library = LibraryLibSSL
	default:
		return nil, fmt.Errorf("decode %s event: unknown library %d", h.Type, b[hsLibrary])
	}
	switch b[hsOutcome] {
	case 1:
		e.Outcome = OutcomeOK
	case 2:
		e.Outcome = OutcomeFailed
	default:
		return nil, fmt.Errorf("decode %s event: unknown outcome %d", h.Type, b[hsOutcome])
	}
	switch b[hsAlertSource] {
	case 1:
		e.AlertSource = "sent"
	case 2:
		e.AlertSource = "wire"
	}
	if e.AlertSource != "" {
		e.Alert = &Alert{Level: b[hsAlertLevel], Description: b[hsAlertDesc]}
	}
	if n := int(le.Uint16(b[hsHelloLen:])); n > 0 {
		// A ClientHello the parser rejects leaves the handshake without a
		// server name; the handshake itself is still valid.
		if ch, err := ParseClientHello(b[hsHello : hsHello+min(n, helloMax)]); err == nil {
			e.ClientHello = ch
			e.ServerName = ch.ServerName
		}
	}
	if e.Outcome == OutcomeFailed {
		switch {
		case e.Alert != nil:
			e.ErrorType = e.Alert.Name()
		case sslErrors[int32(e.SSLError)] != "":
			e.ErrorType = sslErrors[int32(e.SSLError)]
		default:
			e.ErrorType = OtherError
		}
	}
	return e, nil
}

func decodeClientHello(h bpf.Header, b []byte) (bpf.Event, error) {
	if len(b) < helloBodySize {
		return nil, shortErr(h, len(b), helloBodySize)
	}
	le := binary.LittleEndian
	n := min(int(le.Uint16(b[helloLen:])), helloMax)
	ch, err := ParseClientHello(b[helloData : helloData+n])
	if err != nil {
		return nil, fmt.Errorf("decode %s event: %w", h.Type, err)
	}
	return &ClientHelloEvent{Header: h, Peer: bpf.DecodePeer(b[helloPeer : helloPeer+bpf.PeerSize]), ClientHello: *ch}, nil
}

func decodeAlert(h bpf.Header, b []byte) (bpf.Event, error) {
	if len(b) < alertBodySize {
		return nil, shortErr(h, len(b), alertBodySize)
	}
	a := Alert{Level: b[alertLevel], Description: b[alertDesc]}
	return &AlertEvent{Header: h, Peer: bpf.DecodePeer(b[alertPeer : alertPeer+bpf.PeerSize]), Alert: a, Name: a.Name()}, nil
}

// String is the one line `gopatrol trace` shows a person, e.g.
// "TLS localhost failed: bad_certificate in 12ms (go)".
func (e *Handshake) String() string {
	name := e.ServerName
	if name == "" {
		name = "(no SNI)"
	}
	s := fmt.Sprintf("TLS %s %s", name, e.Outcome)
	if e.Peer.IsValid() {
		s = fmt.Sprintf("TLS %s (%s) %s", name, e.Peer, e.Outcome)
	}
	if e.ErrorType != "" {
		s += ": " + e.ErrorType
	}
	return fmt.Sprintf("%s in %s (%s)", s, e.Duration.Round(100*time.Microsecond), e.Library)
}

// String shows a ClientHello seen outside any probed handshake.
func (e *ClientHelloEvent) String() string {
	name := e.ServerName
	if name == "" {
		name = "(no SNI)"
	}
	return fmt.Sprintf("TLS ClientHello to %s at %s", name, peer(e.Peer))
}

// String shows a plaintext alert seen outside any probed handshake.
func (e *AlertEvent) String() string {
	return fmt.Sprintf("TLS alert %s (level %d) to %s", e.Name, e.Level, peer(e.Peer))
}

func peer(p netip.AddrPort) string {
	if !p.IsValid() {
		return "(unknown peer)"
	}
	return p.String()
}
