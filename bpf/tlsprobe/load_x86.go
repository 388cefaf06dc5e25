//go:build 386 || amd64

package tlsprobe

import "github.com/cilium/ebpf"

// tlsCore is tlsObjects without the socket program. LoadAndAssign loads
// only what a struct names, and that program does not load on a kernel
// without the tcp_sendmsg_locked tracepoint.
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

// loadObjects loads the TLS programs into objs, the socket program only
// when socket is set.
func loadObjects(spec *ebpf.CollectionSpec, opts *ebpf.CollectionOptions, socket bool, objs *tlsObjects) error {
	if socket {
		return spec.LoadAndAssign(objs, opts)
	}
	var c tlsCore
	if err := spec.LoadAndAssign(&c, opts); err != nil {
		return err
	}
	objs.tlsMaps = c.tlsMaps
	objs.tlsPrograms = tlsPrograms{
		GoTlsHandshakeEntry: c.GoTlsHandshakeEntry, GoTlsHandshakeRet: c.GoTlsHandshakeRet,
		GoTlsSendAlert: c.GoTlsSendAlert, SslGetErrorEntry: c.SslGetErrorEntry,
		SslGetErrorRet: c.SslGetErrorRet, SslHandshakeEntry: c.SslHandshakeEntry,
		SslHandshakeRet: c.SslHandshakeRet,
	}
	return nil
}
