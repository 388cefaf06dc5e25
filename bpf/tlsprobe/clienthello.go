package tlsprobe

import (
	"errors"
	"fmt"
)

// ClientHello is what the sensor learns from the start of a ClientHello
// record: the kernel copies at most 512 bytes, so later extensions (key
// shares are large) may be cut off. Every client puts server_name early
// enough in practice; Truncated says the buffer ended first.
type ClientHello struct {
	// RecordVersion is the TLS record layer version (0x0301 or 0x0303).
	RecordVersion uint16 `json:"record_version"`
	// Version is the ClientHello's legacy_version.
	Version    uint16   `json:"version"`
	ServerName string   `json:"server_name,omitempty"`
	ALPN       []string `json:"alpn,omitempty"`
	// SupportedVersions lists the supported_versions extension (TLS 1.3).
	SupportedVersions []uint16 `json:"supported_versions,omitempty"`
	Truncated         bool     `json:"truncated,omitempty"`
}

// ErrNotClientHello is returned for bytes that do not start a TLS handshake
// record holding a ClientHello.
var ErrNotClientHello = errors.New("not a TLS ClientHello record")

const (
	recordTypeAlert     = 0x15
	recordTypeHandshake = 0x16
	typeClientHello     = 0x01

	extServerName        = 0
	extALPN              = 16
	extSupportedVersions = 43
)

// reader walks big-endian, length-prefixed TLS structures. A read past the
// end sets short instead of panicking; cut says the buffer ended before a
// length prefix said it would.
type reader struct {
	b     []byte
	short bool
	cut   bool
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.short = true
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() int {
	v := r.bytes(1)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (r *reader) u16() int {
	v := r.bytes(2)
	if v == nil {
		return 0
	}
	return int(v[0])<<8 | int(v[1])
}

func (r *reader) u24() int {
	v := r.bytes(3)
	if v == nil {
		return 0
	}
	return int(v[0])<<16 | int(v[1])<<8 | int(v[2])
}

// prefixed returns a reader over the next n bytes, or over what is left when
// the buffer is shorter (marking both as cut).
func (r *reader) prefixed(n int) *reader {
	if n > len(r.b) {
		sub := &reader{b: r.b, cut: true}
		r.b, r.cut = nil, true
		return sub
	}
	return &reader{b: r.bytes(n)}
}

// ParseClientHello parses a TLS record holding a ClientHello, as written to
// a socket. A buffer cut short returns what was parsed so far with
// Truncated set; malformed data returns an error. It never panics.
func ParseClientHello(b []byte) (*ClientHello, error) {
	r := &reader{b: b}
	if r.u8() != recordTypeHandshake {
		return nil, ErrNotClientHello
	}
	ch := &ClientHello{RecordVersion: uint16(r.u16())}
	if r.short || ch.RecordVersion>>8 != 3 {
		return nil, ErrNotClientHello
	}
	rec := r.prefixed(r.u16())
	if rec.u8() != typeClientHello {
		return nil, ErrNotClientHello
	}
	msg := rec.prefixed(rec.u24())
	ch.Version = uint16(msg.u16())
	msg.bytes(32)        // random
	msg.bytes(msg.u8())  // legacy_session_id
	msg.bytes(msg.u16()) // cipher_suites
	msg.bytes(msg.u8())  // legacy_compression_methods
	if msg.short {
		ch.Truncated = true
		return ch, nil
	}
	if len(msg.b) == 0 {
		ch.Truncated = msg.cut
		return ch, nil // no extensions (SSL 3.0 style), or cut before them
	}
	exts := msg.prefixed(msg.u16())
	for len(exts.b) > 0 {
		typ := exts.u16()
		data := exts.prefixed(exts.u16())
		if exts.short || data.cut {
			break // the extension is cut off: a partial name is no name
		}
		if err := ch.parseExtension(typ, data); err != nil {
			return nil, err
		}
	}
	ch.Truncated = rec.cut || msg.cut || exts.cut || exts.short
	return ch, nil
}

func (ch *ClientHello) parseExtension(typ int, d *reader) error {
	switch typ {
	case extServerName:
		list := d.prefixed(d.u16())
		for len(list.b) > 0 && !list.short {
			nameType := list.u8()
			name := list.bytes(list.u16())
			if list.short {
				return fmt.Errorf("parse ClientHello: server_name extension cut short")
			}
			if nameType == 0 { // host_name
				if !validHostName(name) {
					return fmt.Errorf("parse ClientHello: server_name %q is not a host name", name)
				}
				ch.ServerName = string(name)
			}
		}
	case extALPN:
		list := d.prefixed(d.u16())
		for len(list.b) > 0 {
			p := list.bytes(list.u8())
			if list.short {
				return fmt.Errorf("parse ClientHello: ALPN extension cut short")
			}
			ch.ALPN = append(ch.ALPN, string(p))
		}
	case extSupportedVersions:
		list := d.prefixed(d.u8())
		for len(list.b) >= 2 {
			ch.SupportedVersions = append(ch.SupportedVersions, uint16(list.u16()))
		}
	}
	return nil
}

// validHostName accepts the bytes of a DNS name (RFC 6066 forbids IP
// literals and a trailing dot, but clients differ, so only printable ASCII
// without spaces is required).
func validHostName(b []byte) bool {
	if len(b) == 0 || len(b) > 255 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// Alert is a TLS alert message.
type Alert struct {
	Level       uint8 `json:"level"`
	Description uint8 `json:"description"`
}

// ParseAlert parses a plaintext TLS alert record.
func ParseAlert(b []byte) (Alert, error) {
	if len(b) < 7 || b[0] != recordTypeAlert || b[1] != 3 || b[3] != 0 || b[4] != 2 {
		return Alert{}, errors.New("not a plaintext TLS alert record")
	}
	return Alert{Level: b[5], Description: b[6]}, nil
}

// alertNames are the registered alert descriptions (RFC 8446 section 6,
// RFC 5246 section 7.2), named as in the RFCs; they become error.type.
var alertNames = map[uint8]string{
	0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
	21: "decryption_failed", 22: "record_overflow", 30: "decompression_failure",
	40: "handshake_failure", 41: "no_certificate", 42: "bad_certificate",
	43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired",
	46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
	49: "access_denied", 50: "decode_error", 51: "decrypt_error",
	60: "export_restriction", 70: "protocol_version", 71: "insufficient_security",
	80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
	100: "no_renegotiation", 109: "missing_extension", 110: "unsupported_extension",
	111: "certificate_unobtainable", 112: "unrecognized_name",
	113: "bad_certificate_status_response", 114: "bad_certificate_hash_value",
	115: "unknown_psk_identity", 116: "certificate_required", 120: "no_application_protocol",
	121: "ech_required",
}

// Name is the alert description's RFC name, or "alert_N" when unregistered.
func (a Alert) Name() string { return AlertName(a.Description) }

// AlertName names an alert description.
func AlertName(desc uint8) string {
	if n, ok := alertNames[desc]; ok {
		return n
	}
	return fmt.Sprintf("alert_%d", desc)
}
