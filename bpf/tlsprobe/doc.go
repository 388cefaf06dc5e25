// Package tlsprobe observes the TLS client handshakes of processes in Go
// toolchain trees, and why they fail.
//
//   - Go's crypto/tls: uprobes at the entry and at every RET of
//     (*Conn).clientHandshake, and at the entry of sendAlertLocked for the
//     alert the client sends. The offsets come from disassembling the
//     binary (ResolveGo, bpf/goasm); a binary whose code is not exactly
//     the expected shape is refused (ErrRefused), never probed
//     approximately.
//   - libssl.so.3: uprobes and uretprobes on SSL_do_handshake, SSL_connect
//     and SSL_get_error.
//   - On the socket (tcp_sendmsg_locked, attached by the sensor only while
//     a Go tree lives): the ClientHello, for the server name and address,
//     and plaintext alerts, of any TLS library.
//
// Attach loads the programs into the bpf sensor's process trees and ring
// buffer (bpf.Sensor.ShareMaps), and registers the decoders of its records
// (bpf.RegisterDecoder): events arrive on the sensor's Events channel as
// *Handshake, *ClientHelloEvent and *AlertEvent. The record layouts are
// checked against the committed object's BTF (TestLayoutsMatchObject);
// ParseClientHello, which reads bytes a process wrote, is fuzzed.
package tlsprobe
