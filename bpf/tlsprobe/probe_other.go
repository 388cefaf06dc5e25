//go:build !386 && !amd64

package tlsprobe

import (
	"errors"
	"runtime"

	"github.com/cilium/ebpf"
)

// The TLS object is built for x86_64 only (see gen.go), like the sensor's,
// and the RET-offset search decodes x86 only. On other architectures the
// package compiles, and Attach says why it cannot load.

func loadTls() (*ebpf.CollectionSpec, error) {
	return nil, errors.New("TLS probes: no object for " + runtime.GOARCH)
}

type tlsObjects struct {
	GoTlsHandshakeEntry, GoTlsHandshakeRet, GoTlsSendAlert *ebpf.Program
	SslHandshakeEntry, SslHandshakeRet                     *ebpf.Program
	SslGetErrorEntry, SslGetErrorRet, TlsTcpSendmsg        *ebpf.Program
}

func (o *tlsObjects) Close() error { return nil }

func loadObjects(*ebpf.CollectionSpec, *ebpf.CollectionOptions, bool, *tlsObjects) error {
	return errors.New("TLS probes: no object for " + runtime.GOARCH)
}
