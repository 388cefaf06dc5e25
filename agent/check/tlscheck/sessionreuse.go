package tlscheck

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

const (
	// reuseAddrEnv names a server of the user's (host:port) to test
	// instead of the check's own; reuseCAEnv a PEM file of the CA that
	// signed its certificate (else the system roots).
	reuseAddrEnv = "GOPATROL_TLS_REUSE_ADDR"
	reuseCAEnv   = "GOPATROL_TLS_REUSE_CA"
	// reconnects is openssl s_client -reconnect's count: one full
	// handshake, then this many new connections that should resume.
	reconnects = 5
)

func sessionReuseCheck() check.Check {
	return check.Check{
		ID:     "tls.session-reuse",
		Title:  "an HTTP/1.1-only Go TLS server resumes TLS 1.2 sessions across reconnects",
		Source: "4.4",
		// In-process: no toolchain needed.
		NoToolchain: true,
		Run:         runSessionReuse,
	}
}

func runSessionReuse(ctx context.Context, env *check.Env) check.Result {
	addr := env.Target.Getenv(reuseAddrEnv)
	serverName := ""
	var roots *x509.CertPool
	own := addr == ""
	if own {
		srv, pool, err := startHTTP1Server()
		if err != nil {
			return check.Errorf("start the loopback TLS server: %v", err)
		}
		defer srv.Close()
		addr, roots, serverName = srv.Addr, pool, "127.0.0.1"
	} else {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return check.Errorf("%s=%q is not host:port: %v", reuseAddrEnv, addr, err).
				WithFix("set %s to the server to test, for example 127.0.0.1:8443", reuseAddrEnv)
		}
		serverName = host
		if caFile := env.Target.Getenv(reuseCAEnv); caFile != "" {
			pem, err := env.Target.ReadFile(caFile)
			if err != nil {
				return check.Errorf("read %s: %v", reuseCAEnv, err).WithFix("set %s to a readable PEM file of the server's CA", reuseCAEnv)
			}
			roots = x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return check.Errorf("%s=%s holds no PEM certificate", reuseCAEnv, caFile).WithFix("set %s to a PEM file of the server's CA", reuseCAEnv)
			}
		}
	}

	st, err := reconnect(ctx, addr, serverName, roots)
	res := check.Result{}
	switch {
	case err != nil:
		res = check.Failf("TLS connection %d to %s failed: %v", st.attempts, addr, err).
			WithFix("check that <the server at %s> serves HTTPS with a certificate for %s (set %s to its CA)", addr, serverName, reuseCAEnv)
	case st.resumed == 0:
		res = check.Failf("none of %d reconnects to %s resumed the TLS 1.2 session: every connection pays a full handshake", reconnects, addr).
			WithFix("enable session tickets in <the tls.Config of the server at %s>: do not set SessionTicketsDisabled; with several replicas share SessionTicketKey or call SetSessionTicketKeys with the same keys", addr)
	case st.resumed < reconnects:
		res = check.Warnf("only %d of %d reconnects to %s resumed the TLS 1.2 session", st.resumed, reconnects, addr).
			WithFix("in <the tls.Config of the server at %s>, rotate session ticket keys less often, and share them across replicas behind one address with SetSessionTicketKeys", addr)
	default:
		res = check.Passf("%d of %d reconnects to %s resumed the TLS 1.2 session", st.resumed, reconnects, addr)
	}
	res = res.With("server_address", addr).
		With("attempts", strconv.Itoa(st.attempts)).
		With("resumed", strconv.Itoa(st.resumed)).
		With("tls_version", st.version).
		With("protocol", st.proto)
	if own {
		res = res.With("server", "built-in (HTTP/2 off, like GODEBUG=http2server=0); set "+reuseAddrEnv+" to test your own")
	}
	return res
}

type reuseStats struct {
	attempts, resumed int
	version, proto    string
}

// reconnect makes one request per new connection, as `openssl s_client
// -reconnect -tls1_2` does, and counts the resumed handshakes.
func reconnect(ctx context.Context, addr, serverName string, roots *x509.CertPool) (reuseStats, error) {
	var st reuseStats
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs:            roots,
			ServerName:         serverName,
			MaxVersion:         tls.VersionTLS12,
			ClientSessionCache: tls.NewLRUClientSessionCache(4),
		},
		DisableKeepAlives: true, // every request a new connection
		ForceAttemptHTTP2: false,
		TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
		Proxy:             nil, // a loopback probe never goes through HTTPS_PROXY
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for i := 0; i <= reconnects; i++ {
		st.attempts = i + 1
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/", nil)
		if err != nil {
			return st, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return st, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.TLS == nil {
			return st, errors.New("response came without TLS")
		}
		st.version = tls.VersionName(resp.TLS.Version)
		st.proto = resp.Proto
		if i > 0 && resp.TLS.DidResume {
			st.resumed++
		}
	}
	return st, nil
}

// tlsServer is an HTTPS server on loopback.
type tlsServer struct {
	Addr string
	CA   *x509.Certificate // signed the server's certificate
	srv  *http.Server
}

func (s *tlsServer) Close() { _ = s.srv.Close() }

// startHTTP1Server starts the source document's server: Go's net/http over TLS with
// HTTP/2 switched off (an empty TLSNextProto is what
// GODEBUG=http2server=0 amounts to), default session tickets, and a
// certificate for 127.0.0.1 signed by a CA made for this run.
func startHTTP1Server() (*tlsServer, *x509.CertPool, error) {
	return startTLSServer(func(*tls.Config) {})
}

// startTLSServer is startHTTP1Server with a hook to change the server's
// TLS configuration (tests turn session tickets off).
func startTLSServer(configure func(*tls.Config)) (*tlsServer, *x509.CertPool, error) {
	cert, ca, err := loopbackCert()
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	configure(cfg)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "ok\n")
		}),
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ReadHeaderTimeout: 5 * time.Second,
		// A client that gives up mid-handshake is not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.Serve(tls.NewListener(ln, cfg)) }()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tlsServer{Addr: ln.Addr().String(), CA: ca, srv: srv}, pool, nil
}

// loopbackCert makes a CA and a leaf certificate for 127.0.0.1 signed by it.
func loopbackCert() (tls.Certificate, *x509.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gopatrol tls.session-reuse CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}, ca, nil
}
