// Package proxytest is a loopback Go module proxy for tests, in the spirit
// of net/http/httptest: an HTTPS server on 127.0.0.1 with its own freshly
// generated CA that speaks the GOPROXY protocol for modules the test adds.
// The real go command can fetch from it:
//
//	p := proxytest.New(t)
//	p.Module("example.com/hello", "v1.0.0", map[string]string{
//		"hello.go": "package hello\n\nconst Greeting = \"hi\"\n",
//	})
//	cmd := exec.Command("go", "mod", "download", "example.com/hello@v1.0.0")
//	cmd.Env = append(os.Environ(), p.Env()...)
//
// Env is GOPROXY=<URL>, GOSUMDB=off, GONOSUMDB=*, GOFLAGS=-mod=mod and
// SSL_CERT_FILE=<CAFile>. Without SSL_CERT_FILE the go command fails with
// "x509: certificate signed by unknown authority", as it should.
//
// API:
//
//	New(t, opts...) *Server   started; closed by t.Cleanup (or Close)
//	(*Server).Module(path, version, files)   files: name -> content; "go.mod"
//	                                        defaults to "module <path>\n"
//	(*Server).URL()        "https://127.0.0.1:<port>" (matches the IP SAN)
//	(*Server).Addr()       "127.0.0.1:<port>"
//	(*Server).ServerName() DNS name in the leaf ("proxy.gopatrol.test")
//	(*Server).CAFile()     PEM of the trust anchor, world-readable (0644 in a
//	                       0755 temp dir), removed by t.Cleanup
//	(*Server).CAPool()     the same as an *x509.CertPool
//	(*Server).Client()     *http.Client trusting only CAPool
//	(*Server).Env()        the environment above, for exec.Cmd.Env
//	(*Server).Requests()   number of requests served so far
//	(*Server).Close()
//	TempModCache(t)        an empty GOMODCACHE that cleanup can remove
//
// Options build the broken worlds: WithStatus(410) answers every request
// with that code; WithExpiredCert() serves a leaf that expired yesterday;
// WithExpiresIn(d) one that expires in d; WithServerName(name) a leaf for
// name only (no IP SAN, so dialling 127.0.0.1 is a name mismatch);
// WithSelfSigned() a self-signed leaf and no CA (CAFile then holds the leaf
// itself); WithHandler(h) serves h instead of the module proxy, with the
// same TLS setup.
package proxytest
