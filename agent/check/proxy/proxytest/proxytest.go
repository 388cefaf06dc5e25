package proxytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	modzip "golang.org/x/mod/zip"
)

// discardLog silences the TLS handshake errors that failure-world tests
// provoke on purpose.
var discardLog = log.New(io.Discard, "", 0)

// DefaultServerName is the DNS name in the leaf certificate by default.
const DefaultServerName = "proxy.gopatrol.test"

// Option changes how New builds the server.
type Option func(*config)

type config struct {
	status     int
	expired    bool
	expiresIn  time.Duration
	serverName string
	nameOnly   bool // leaf for serverName only: no IP SAN
	selfSigned bool
	handler    http.Handler
}

// WithStatus makes every request answer code (for example 410 or 500) with
// a plain-text body, as a refusing or broken proxy does.
func WithStatus(code int) Option { return func(c *config) { c.status = code } }

// WithExpiredCert serves a leaf certificate that expired a day ago.
func WithExpiredCert() Option { return func(c *config) { c.expired = true } }

// WithExpiresIn serves a leaf certificate that expires d from now.
func WithExpiresIn(d time.Duration) Option { return func(c *config) { c.expiresIn = d } }

// WithServerName serves a certificate for name only, without the
// 127.0.0.1 IP SAN: a client dialling URL() sees a name mismatch unless it
// sets ServerName() as the TLS server name.
func WithServerName(name string) Option {
	return func(c *config) { c.serverName, c.nameOnly = name, true }
}

// WithSelfSigned serves a self-signed leaf: there is no CA, CAFile and
// CAPool hold the leaf itself.
func WithSelfSigned() Option { return func(c *config) { c.selfSigned = true } }

// WithHandler serves h instead of the module proxy, for answers no proxy
// gives (an HTML login page, a redirect).
func WithHandler(h http.Handler) Option { return func(c *config) { c.handler = h } }

// Server is a running loopback module proxy.
type Server struct {
	srv        *httptest.Server
	serverName string
	caPEM      []byte
	caFile     string
	pool       *x509.CertPool
	requests   atomic.Int64
	closeOnce  sync.Once

	mu      sync.Mutex
	modules map[string]map[string]*version // path -> version -> files
}

type version struct {
	mod  []byte
	zip  []byte
	time time.Time
}

// New starts a proxy on 127.0.0.1 with a fresh CA and leaf. It fails the
// test if it cannot; t.Cleanup closes it.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config{serverName: DefaultServerName}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{serverName: cfg.serverName, modules: map[string]map[string]*version{}}
	leaf, anchor, err := newCerts(cfg)
	if err != nil {
		t.Fatalf("proxytest: certificates: %v", err)
	}
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: anchor.Raw})
	s.pool = x509.NewCertPool()
	s.pool.AddCert(anchor)
	// Not t.TempDir (0700): a go command run as another user (nobody)
	// must be able to read SSL_CERT_FILE.
	caDir, err := os.MkdirTemp("", "proxytest-ca-")
	if err != nil {
		t.Fatalf("proxytest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(caDir) })
	s.caFile = filepath.Join(caDir, "proxytest-ca.pem")
	if err := os.Chmod(caDir, 0o755); err != nil {
		t.Fatalf("proxytest: %v", err)
	}
	if err := os.WriteFile(s.caFile, s.caPEM, 0o644); err != nil {
		t.Fatalf("proxytest: %v", err)
	}

	var h http.Handler = http.HandlerFunc(s.serveProxy)
	if cfg.handler != nil {
		h = cfg.handler
	}
	if cfg.status != 0 {
		code := cfg.status
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, fmt.Sprintf("proxytest: answering %d %s for %s", code, http.StatusText(code), r.URL.Path), code)
		})
	}
	inner := h
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		inner.ServeHTTP(w, r)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxytest: listen: %v", err)
	}
	s.srv = &httptest.Server{
		Listener: ln,
		Config:   &http.Server{Handler: h, ErrorLog: discardLog},
		TLS:      &tls.Config{Certificates: []tls.Certificate{leaf}},
	}
	s.srv.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// URL is the proxy's base URL, https://127.0.0.1:<port>, for GOPROXY.
func (s *Server) URL() string { return s.srv.URL }

// Addr is the listening address, 127.0.0.1:<port>.
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// ServerName is the DNS name the leaf certificate is for.
func (s *Server) ServerName() string { return s.serverName }

// CAFile is the path of a PEM file holding the trust anchor, for
// SSL_CERT_FILE; every user can read it.
func (s *Server) CAFile() string { return s.caFile }

// CAPEM is the trust anchor in PEM form.
func (s *Server) CAPEM() []byte { return bytes.Clone(s.caPEM) }

// CAPool is a pool holding only the trust anchor.
func (s *Server) CAPool() *x509.CertPool { return s.pool }

// Client is an HTTP client that trusts only this server's anchor.
func (s *Server) Client() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.pool}},
	}
}

// Env is what the go command needs to fetch modules from this proxy and
// nothing else: no checksum database, -mod=mod, and the CA as its roots.
func (s *Server) Env() []string {
	return []string{
		"GOPROXY=" + s.URL(),
		"GOSUMDB=off",
		"GONOSUMDB=*",
		"GOFLAGS=-mod=mod",
		"SSL_CERT_FILE=" + s.caFile,
	}
}

// Requests is how many requests the server has answered.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Close shuts the server down; it is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// Module adds version of the module at path, with files (relative slash
// paths to contents). A missing go.mod becomes "module <path>\n". It panics
// on an invalid path, version or file set, which is a bug in the test.
func (s *Server) Module(path, vers string, files map[string]string) {
	if err := module.Check(path, vers); err != nil {
		panic(fmt.Sprintf("proxytest: Module(%q, %q): %v", path, vers, err))
	}
	mod, ok := files["go.mod"]
	if !ok {
		mod = "module " + path + "\n"
		files = withFile(files, "go.mod", mod)
	}
	var names []string
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var zf []modzip.File
	for _, name := range names {
		zf = append(zf, memFile{name: name, data: []byte(files[name])})
	}
	var buf bytes.Buffer
	if err := modzip.Create(&buf, module.Version{Path: path, Version: vers}, zf); err != nil {
		panic(fmt.Sprintf("proxytest: zip %s@%s: %v", path, vers, err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.modules[path] == nil {
		s.modules[path] = map[string]*version{}
	}
	s.modules[path][vers] = &version{mod: []byte(mod), zip: buf.Bytes(), time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func withFile(m map[string]string, k, v string) map[string]string {
	c := make(map[string]string, len(m)+1)
	for kk, vv := range m {
		c[kk] = vv
	}
	c[k] = v
	return c
}

// serveProxy answers the GOPROXY protocol (go help goproxy):
// <module>/@v/list, <module>/@v/<version>.{info,mod,zip}, <module>/@latest.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	var escMod, rest string
	if m, ok := strings.CutSuffix(p, "/@latest"); ok {
		escMod, rest = m, "@latest"
	} else if m, file, ok := strings.Cut(p, "/@v/"); ok {
		escMod, rest = m, file
	} else {
		http.Error(w, "not a module proxy path: "+r.URL.Path, http.StatusNotFound)
		return
	}
	path, err := module.UnescapePath(escMod)
	if err != nil {
		http.Error(w, "bad module path: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	versions := s.modules[path]
	s.mu.Unlock()
	if versions == nil {
		http.Error(w, "not found: module "+path+" unknown to proxytest", http.StatusNotFound)
		return
	}
	switch {
	case rest == "list":
		var list []string
		for v := range versions {
			list = append(list, v)
		}
		semver.Sort(list)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, strings.Join(list, "\n")+"\n")
	case rest == "@latest":
		// Like a real proxy: the highest release, else the highest
		// pre-release.
		latest := ""
		for v := range versions {
			release, latestRelease := semver.Prerelease(v) == "", latest != "" && semver.Prerelease(latest) == ""
			if latest == "" || (release && !latestRelease) || (release == latestRelease && semver.Compare(v, latest) > 0) {
				latest = v
			}
		}
		writeInfo(w, latest, versions[latest].time)
	default:
		ext := filepath.Ext(rest)
		v, err := module.UnescapeVersion(strings.TrimSuffix(rest, ext))
		if err != nil {
			http.Error(w, "bad version: "+err.Error(), http.StatusBadRequest)
			return
		}
		ver := versions[v]
		if ver == nil {
			http.Error(w, fmt.Sprintf("not found: %s@%s: unknown revision %s", path, v, v), http.StatusNotFound)
			return
		}
		switch ext {
		case ".info":
			writeInfo(w, v, ver.time)
		case ".mod":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(ver.mod)
		case ".zip":
			w.Header().Set("Content-Type", "application/zip")
			w.Write(ver.zip)
		default:
			http.Error(w, "not found: "+rest, http.StatusNotFound)
		}
	}
}

func writeInfo(w http.ResponseWriter, v string, t time.Time) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		Version string
		Time    time.Time
	}{v, t})
}

// TempModCache returns an empty module cache directory for GOMODCACHE that
// t.Cleanup removes even though the go command makes its contents
// read-only.
func TempModCache(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "proxytest-modcache-")
	if err != nil {
		t.Fatalf("proxytest: %v", err)
	}
	t.Cleanup(func() {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
		_ = os.RemoveAll(dir)
	})
	return dir
}

// memFile is a file of a module zip held in memory.
type memFile struct {
	name string
	data []byte
}

func (f memFile) Path() string { return f.name }
func (f memFile) Lstat() (fs.FileInfo, error) {
	return memInfo{name: filepath.Base(f.name), size: int64(len(f.data))}, nil
}
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(f.data)), nil }

type memInfo struct {
	name string
	size int64
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o644 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }

// newCerts returns the leaf to serve and the trust anchor a client needs:
// the CA, or the leaf itself when it is self-signed.
func newCerts(cfg config) (tls.Certificate, *x509.Certificate, error) {
	now := time.Now()
	notBefore, notAfter := now.Add(-time.Hour), now.Add(30*24*time.Hour)
	switch {
	case cfg.expired:
		notBefore, notAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	case cfg.expiresIn != 0:
		notAfter = now.Add(cfg.expiresIn)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cfg.serverName, Organization: []string{"gopatrol proxytest"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{cfg.serverName},
	}
	if !cfg.nameOnly {
		leafTmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}

	if cfg.selfSigned {
		leafTmpl.Subject.CommonName = cfg.serverName + " (self-signed)"
		der, err := x509.CreateCertificate(rand.Reader, leafTmpl, leafTmpl, &leafKey.PublicKey, leafKey)
		if err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("self-signed leaf: %w", err)
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return tls.Certificate{}, nil, err
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: leafKey, Leaf: leaf}, leaf, nil
	}

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(),
		// A unique name per server so that a test can tell which CA a
		// diagnostic is naming.
		Subject:               pkix.Name{CommonName: fmt.Sprintf("gopatrol proxytest CA %x", serial().Uint64()&0xffffff), Organization: []string{"gopatrol proxytest"}},
		NotBefore:             now.Add(-72 * time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("leaf: %w", err)
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	// The chain a real server sends: leaf and intermediate-less CA.
	return tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey, Leaf: leaf}, ca, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}
