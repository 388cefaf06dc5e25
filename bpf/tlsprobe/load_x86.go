//go:build 386 || amd64

package tlsprobe

import "github.com/cilium/ebpf"

// tlsCore is tlsObjects without the socket program and without the
// variables. LoadAndAssign loads only what a struct names: the socket
// program does not load on a kernel without the tcp_sendmsg_locked
// tracepoint, and the only variables are the layout anchors (tls.bpf.c),
// which no program reads and which would otherwise cost a .rodata map.
type tlsCore struct {
	tlsMaps
	GoTlsHandshakeEntry *ebpf.Program `ebpf:"go_tls_handshake_entry"`
	GoTlsHandshakeRet   *ebpf.Program `ebpf:"go_tls_handshake_ret"`
	GoTlsSendAlert      *ebpf.Program `ebpf:"go_tls_send_alert"`
	SslGetErrorEntry    *ebpf.Program `ebpf:"ssl_get_error_entry"`
	SslGetErrorRet      *ebpf.Program `ebpf:"ssl_get_error_ret"`
	SslHandshakeEntry   *ebpf.Program `ebpf:"ssl_handshake_entry"`
	SslHandshakeRet     *ebpf.Program `ebpf:"ssl_handshake_ret"`
}

// tlsWithSocket is tlsCore and the socket program.
type tlsWithSocket struct {
	tlsCore
	TlsTcpSendmsg *ebpf.Program `ebpf:"tls_tcp_sendmsg"`
}

// loadObjects loads the TLS programs into objs, the socket program only
// when socket is set.
func loadObjects(spec *ebpf.CollectionSpec, opts *ebpf.CollectionOptions, socket bool, objs *tlsObjects) error {
	var l tlsWithSocket
	var err error
	if socket {
		err = spec.LoadAndAssign(&l, opts)
	} else {
		err = spec.LoadAndAssign(&l.tlsCore, opts)
	}
	if err != nil {
		return err
	}
	c := l.tlsCore
	objs.tlsMaps = c.tlsMaps
	objs.tlsPrograms = tlsPrograms{
		GoTlsHandshakeEntry: c.GoTlsHandshakeEntry, GoTlsHandshakeRet: c.GoTlsHandshakeRet,
		GoTlsSendAlert: c.GoTlsSendAlert, SslGetErrorEntry: c.SslGetErrorEntry,
		SslGetErrorRet: c.SslGetErrorRet, SslHandshakeEntry: c.SslHandshakeEntry,
		SslHandshakeRet: c.SslHandshakeRet, TlsTcpSendmsg: l.TlsTcpSendmsg,
	}
	return nil
}
