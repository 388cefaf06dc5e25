package tlsprobe

import (
	"net/netip"
	"syscall"
	"testing"

	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/bpf/internal/btflayout"
)

// objectStruct is the layout of a struct in the BTF of the committed TLS
// object (the one loadTls embeds).
var objectStruct = btflayout.Cache(loadTls, "tls_handshake_event", "tls_hello_event", "tls_alert_event")

type fields = map[string]btflayout.Field

// TestLayoutsMatchObject checks every offset and size the TLS decoders
// read against the BTF of the committed object. The header and the peer
// are the sensor's (bpf.Decode, bpf.DecodePeer): bpf's own test checks
// their insides, this one where they sit.
func TestLayoutsMatchObject(t *testing.T) {
	hdr := btflayout.Field{Offset: -bpf.HeaderSize, Size: bpf.HeaderSize}
	tests := []struct {
		name string
		size int
		want fields
	}{
		{"tls_handshake_event", handshakeBodySize, fields{
			"h": hdr, "duration_ns": {Offset: hsDuration, Size: 8}, "conn_id": {Offset: hsConn, Size: 8},
			"ret": {Offset: hsRet, Size: 4}, "ssl_err": {Offset: hsSSLError, Size: 4},
			"library": {Offset: hsLibrary, Size: 1}, "outcome": {Offset: hsOutcome, Size: 1},
			"alert_level": {Offset: hsAlertLevel, Size: 1}, "alert_desc": {Offset: hsAlertDesc, Size: 1},
			"alert_source": {Offset: hsAlertSource, Size: 1}, "hello_len": {Offset: hsHelloLen, Size: 2},
			"peer": {Offset: hsPeer, Size: bpf.PeerSize}, "hello": {Offset: hsHello, Size: helloMax},
		}},
		{"tls_hello_event", helloBodySize, fields{
			"h": hdr, "peer": {Offset: helloPeer, Size: bpf.PeerSize},
			"hello_len": {Offset: helloLen, Size: 2}, "hello": {Offset: helloData, Size: helloMax},
		}},
		{"tls_alert_event", alertBodySize, fields{
			"h": hdr, "peer": {Offset: alertPeer, Size: bpf.PeerSize},
			"level": {Offset: alertLevel, Size: 1}, "desc": {Offset: alertDesc, Size: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, err := range objectStruct(t, tt.name).Check(bpf.HeaderSize+tt.size, bpf.HeaderSize, tt.want) {
				t.Error(err)
			}
		})
	}
}

// tlsRecord builds a record of C struct name from the object's BTF, not
// from the decoder's offsets: header for pid 4242 in tree 4200, then fill.
func tlsRecord(tb testing.TB, typ bpf.EventType, name string, fill map[string]any) []byte {
	tb.Helper()
	s := objectStruct(tb, name)
	b := s.Record()
	s.Put(b, "h.type", uint16(typ))
	s.Put(b, "h.size", len(b))
	s.Put(b, "h.pid", 4242)
	s.Put(b, "h.root_pid", 4200)
	for k, v := range fill {
		s.Put(b, k, v)
	}
	return b
}

// peerFields fills struct gp_peer member prefix with addr ("" for none).
func peerFields(fill map[string]any, prefix, addr string) map[string]any {
	if addr == "" {
		return fill
	}
	ap := netip.MustParseAddrPort(addr)
	fill[prefix+".port"] = ap.Port()
	if ap.Addr().Is4() {
		a := ap.Addr().As4()
		fill[prefix+".family"], fill[prefix+".addr"] = syscall.AF_INET, a[:]
	} else {
		a := ap.Addr().As16()
		fill[prefix+".family"], fill[prefix+".addr"] = syscall.AF_INET6, a[:]
	}
	return fill
}
