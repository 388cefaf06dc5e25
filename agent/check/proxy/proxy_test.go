package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/agent/check/proxy/proxytest"
	"github.com/gopatrol/gopatrol/internal/loopback"
)

const probeMod = "example.com/probe"

func TestProxyEntries(t *testing.T) {
	tests := []struct {
		in   string
		want []string // Label, with "|" suffix for FallBackOnError, "!" for Err
	}{
		{"https://a.test,direct", []string{"GOPROXY https://a.test", "GOPROXY direct"}},
		{"a.test|https://b.test/x,off,https://never.test", []string{"GOPROXY https://a.test|", "GOPROXY https://b.test/x", "GOPROXY off"}},
		{" , ", nil},
		{"file:///srv/mods,http://c.test:8080", []string{"GOPROXY file:///srv/mods", "GOPROXY http://c.test:8080"}},
		{"ftp://x.test", []string{"GOPROXY ftp://x.test!"}},
	}
	for _, tt := range tests {
		var got []string
		for _, e := range proxyEntries(tt.in) {
			s := e.Label()
			if e.FallBackOnError {
				s += "|"
			}
			if e.Err != nil {
				s += "!"
			}
			got = append(got, s)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("proxyEntries(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSumdbEntry(t *testing.T) {
	tests := []struct{ in, want string }{
		{"sum.example.org", "https://sum.example.org"},
		{"sum.example.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ze5ZGfmf3m8d8Y1", "https://sum.example.org"},
		{"sum.example.org+033de0ae+Ac4 https://mirror.test/sumdb", "https://mirror.test/sumdb"},
		{"off", "off"},
		{"a b c", "error"},
	}
	for _, tt := range tests {
		e, ok := sumdbEntry(tt.in)
		got := e.Special
		switch {
		case !ok:
			got = "none"
		case e.Err != nil:
			got = "error"
		case e.URL != nil:
			got = e.URL.String()
		}
		if got != tt.want {
			t.Errorf("sumdbEntry(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// caDir is an SSL_CERT_DIR holding p's anchor.
func caDir(t *testing.T, p *proxytest.Server) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "proxy-ca.pem"), p.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTLS(t *testing.T) {
	tlsc := checktest.Find(t, Checks(), "proxy.tls")
	tests := []struct {
		name   string
		opts   []proxytest.Option
		trust  string // "file", "dir" or "" (the machine's roots)
		status check.Status
		want   []string // in the summary or evidence
	}{
		{"healthy, CA in SSL_CERT_FILE", nil, "file", check.Pass, []string{"verified", "gopatrol proxytest CA", "SSL_CERT_FILE="}},
		{"healthy, CA in SSL_CERT_DIR", nil, "dir", check.Pass, []string{"verified", "SSL_CERT_DIR="}},
		{"self-signed, not trusted", []proxytest.Option{proxytest.WithSelfSigned()}, "", check.Fail,
			[]string{"x509: certificate signed by unknown authority", "self-signed certificate, issuer CN=proxy.gopatrol.test (self-signed)"}},
		{"self-signed, in SSL_CERT_FILE", []proxytest.Option{proxytest.WithSelfSigned()}, "file", check.Pass, []string{"verified"}},
		{"CA not trusted", nil, "", check.Fail, []string{"unknown authority", "issuer CN=gopatrol proxytest CA"}},
		{"expired", []proxytest.Option{proxytest.WithExpiredCert()}, "file", check.Fail, []string{"x509: certificate has expired or is not yet valid"}},
		{"name mismatch", []proxytest.Option{proxytest.WithServerName("elsewhere.test")}, "file", check.Fail,
			[]string{"x509: cannot validate certificate for 127.0.0.1", "elsewhere.test"}},
		{"answer cut after the handshake", []proxytest.Option{proxytest.WithHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		}))}, "file", check.Pass, []string{"verified", "the request after the handshake failed"}},
		{"expires soon", []proxytest.Option{proxytest.WithExpiresIn(5 * 24 * time.Hour)}, "file", check.Warn, []string{"expires in 4 days"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := proxytest.New(t, tt.opts...)
			w := checktest.New(t)
			w.Setenv("GOPROXY="+p.URL()+",direct", "GOSUMDB=off")
			switch tt.trust {
			case "file":
				w.Setenv("SSL_CERT_FILE=" + p.CAFile())
			case "dir":
				w.Setenv("SSL_CERT_FILE=/nonexistent/bundle.pem", "SSL_CERT_DIR="+caDir(t, p))
			default:
				w.Unsetenv("SSL_CERT_FILE")
				w.Unsetenv("SSL_CERT_DIR")
			}
			res := w.Run(tlsc)
			if res.Status != tt.status {
				t.Fatalf("status %s, want %s: %s", res.Status, tt.status, res.Summary)
			}
			for _, s := range append(tt.want, p.URL()) {
				if !checktest.EvidenceContains(res, s) {
					t.Errorf("result does not mention %q", s)
				}
			}
			if tt.status != check.Pass && res.Fix == "" {
				t.Error("no fix")
			}
			if p.Requests() == 0 && tt.status == check.Pass {
				t.Error("the proxy was never asked")
			}
			checktest.FixRerun(t, w, tlsc, res)
		})
	}
}

func TestTLSEntries(t *testing.T) {
	tlsc := checktest.Find(t, Checks(), "proxy.tls")
	p := proxytest.New(t)
	addr := loopback.UnusedAddr(t)
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	plainAddr := strings.TrimPrefix(plain.URL, "http://")
	tests := []struct {
		name, goproxy, gosumdb string
		status                 check.Status
		want                   []string
	}{
		{"off", "off", "off", check.Skip, []string{"GOSUMDB=off"}},
		{"direct and http", "http://127.0.0.1:1,direct", "off", check.Skip, []string{"http is not TLS", "direct: the go command fetches"}},
		{"sumdb with URL", "off", "sum.example.test+033de0ae+AAAA " + p.URL(), check.Pass, []string{p.URL(), "verified"}},
		{"unreachable", "https://" + addr, "off", check.Warn, []string{"could not connect", addr}},
		{"plain http on the https port", "https://" + plainAddr, "off", check.Fail, []string{"server gave HTTP response to HTTPS client", plainAddr}},
		{"bad entry", "ftp://x.test", "off", check.Fail, []string{`invalid GOPROXY entry "ftp://x.test": unsupported scheme "ftp"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := checktest.New(t)
			w.Setenv("GOPROXY="+tt.goproxy, "GOSUMDB="+tt.gosumdb, "SSL_CERT_FILE="+p.CAFile())
			res := w.Run(tlsc)
			if res.Status != tt.status {
				t.Fatalf("status %s, want %s: %s", res.Status, tt.status, res.Summary)
			}
			for _, s := range tt.want {
				if !checktest.EvidenceContains(res, s) {
					t.Errorf("result does not mention %q", s)
				}
			}
			checktest.FixRerun(t, w, tlsc, res)
		})
	}
}

func TestProtocol(t *testing.T) {
	proto := checktest.Find(t, Checks(), "proxy.protocol")
	good := proxytest.New(t)
	good.Module(probeMod, "v1.0.0", map[string]string{"probeMod.go": "package probeMod\n"})
	good.Module(probeMod, "v1.2.0", map[string]string{"probeMod.go": "package probeMod\n"})
	gone := proxytest.New(t, proxytest.WithStatus(http.StatusGone))
	broken := proxytest.New(t, proxytest.WithStatus(http.StatusBadGateway))
	empty := proxytest.New(t)
	html := proxytest.New(t, proxytest.WithHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html><body>Please sign in</body></html>"))
	})))
	listOnly := proxytest.New(t, proxytest.WithHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/@v/list") {
			w.Write([]byte("v0.9.0\nv1.0.0\n"))
			return
		}
		http.NotFound(w, r)
	})))
	// One bundle trusting every server above.
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	var pem []byte
	for _, p := range []*proxytest.Server{good, gone, broken, empty, html, listOnly} {
		pem = append(pem, p.CAPEM()...)
	}
	if err := os.WriteFile(bundle, pem, 0o644); err != nil {
		t.Fatal(err)
	}

	fileProxy := t.TempDir()
	if err := os.MkdirAll(filepath.Join(fileProxy, "example.com/probe/@v"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(fileProxy, "example.com/probe/@v/list"), []byte("v0.1.0\n"), 0o644)

	tests := []struct {
		name    string
		goproxy string
		env     []string
		status  check.Status
		want    []string
	}{
		{"healthy", good.URL(), nil, check.Pass, []string{"2 version(s), highest v1.2.0", "@latest: v1.2.0", good.URL()}},
		{"410", gone.URL(), nil, check.Fail, []string{"410 Gone", "the proxy refuses to serve " + probeMod, "GOPRIVATE=example.com/probe", gone.URL()}},
		{"404", empty.URL(), nil, check.Fail, []string{"404 Not Found", "the proxy does not have " + probeMod, empty.URL()}},
		{"5xx", broken.URL(), nil, check.Fail, []string{"502 Bad Gateway", "the go command stops at GOPROXY " + broken.URL()}},
		{"html", html.URL(), nil, check.Fail, []string{"HTML page", "Please sign in", html.URL()}},
		{"list without @latest", listOnly.URL(), nil, check.Pass, []string{"2 version(s), highest v1.0.0", "@latest: 404 Not Found, which is fine"}},
		{"file proxy", "file://" + fileProxy, nil, check.Pass, []string{"1 version(s), highest v0.1.0"}},
		{"410 then good", gone.URL() + "," + good.URL(), nil, check.Warn, []string{"410 Gone", "@latest: v1.2.0"}},
		{"5xx with | then good", broken.URL() + "|" + good.URL(), nil, check.Warn, []string{"502", "@latest: v1.2.0"}},
		{"404 then direct", empty.URL() + ",direct", nil, check.Warn, []string{"falls back to direct"}},
		{"not trusted", good.URL(), []string{"SSL_CERT_FILE=/nonexistent.pem", "SSL_CERT_DIR=/nonexistent"}, check.Fail, []string{"TLS verification failed", "unknown authority"}},
		{"direct only", "direct", nil, check.Skip, []string{"direct"}},
		{"bad entry after a good one", good.URL() + ",ftp://x.test", nil, check.Fail, []string{"ftp://x.test", "rejects the whole GOPROXY list"}},
		{"bad probeMod", good.URL(), []string{ProbeModuleEnv + "=not a module"}, check.Error, []string{"not a module"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := checktest.New(t)
			w.Setenv("GOPROXY="+tt.goproxy, "SSL_CERT_FILE="+bundle, ProbeModuleEnv+"="+probeMod)
			w.Setenv(tt.env...)
			res := w.Run(proto)
			if res.Status != tt.status {
				t.Fatalf("status %s, want %s: %s", res.Status, tt.status, res.Summary)
			}
			for _, s := range tt.want {
				if !checktest.EvidenceContains(res, s) && !strings.Contains(res.Fix, s) {
					t.Errorf("result does not mention %q", s)
				}
			}
			if tt.status != check.Pass && tt.status != check.Skip && res.Fix == "" {
				t.Error("no fix")
			}
			if strings.Contains(res.Summary, "%!") {
				t.Errorf("bad format in summary: %s", res.Summary)
			}
			checktest.FixRerun(t, w, proto, res)
		})
	}
}

// connectProxy is an HTTP proxy on 127.0.0.1 that answers CONNECT by
// dialling upstream, whatever host was asked for, as a corporate proxy
// would resolve the name for its clients. It counts the tunnels.
func connectProxy(t *testing.T, upstream string) (string, *atomic.Int32) {
	t.Helper()
	var tunnels atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		up, err := net.Dial("tcp", upstream)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		tunnels.Add(1)
		c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		go func() { io.Copy(up, c); up.Close() }()
		io.Copy(c, up)
		c.Close()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), &tunnels
}

// TestThroughHTTPSProxy reaches the proxy by its DNS name, which only the
// CONNECT proxy resolves: both checks must go through HTTPS_PROXY as the
// go command does.
func TestThroughHTTPSProxy(t *testing.T) {
	p := proxytest.New(t)
	p.Module(probeMod, "v1.0.0", map[string]string{"probe.go": "package probe\n"})
	hp, tunnels := connectProxy(t, p.Addr())
	_, port, _ := net.SplitHostPort(p.Addr())
	byName := "https://" + p.ServerName() + ":" + port
	w := checktest.New(t)
	w.Setenv("GOPROXY="+byName, "GOSUMDB=off", "SSL_CERT_FILE="+p.CAFile(), "HTTPS_PROXY="+hp, "NO_PROXY=", ProbeModuleEnv+"="+probeMod)
	for _, id := range []string{"proxy.tls", "proxy.protocol"} {
		before := tunnels.Load()
		res := w.Run(checktest.Find(t, Checks(), id))
		if res.Status != check.Pass {
			t.Fatalf("%s: status %s, want pass: %s", id, res.Status, res.Summary)
		}
		if !checktest.EvidenceContains(res, byName) {
			t.Errorf("%s does not mention %s", id, byName)
		}
		if tunnels.Load() == before {
			t.Errorf("%s did not go through HTTPS_PROXY %s", id, hp)
		}
	}
	res := w.Run(checktest.Find(t, Checks(), "proxy.tls"))
	if !checktest.EvidenceContains(res, "via HTTPS_PROXY "+hp) {
		t.Errorf("proxy.tls does not say it went through %s", hp)
	}
}

// TestPasswordsNeverReported: a GOPROXY URL carrying credentials is named
// in every result of the proxy checks and module.toolchain with its
// password hidden, whether the proxy answers, is untrusted or is down.
func TestPasswordsNeverReported(t *testing.T) {
	const secret = "s3cret-gopatrol"
	p := proxytest.New(t)
	withPassword := func(u string) string {
		return strings.Replace(u, "https://", "https://ci:"+secret+"@", 1)
	}
	tests := []struct {
		name, goproxy string
		trusted       bool
	}{
		{"answering", withPassword(p.URL()), true},
		{"untrusted", withPassword(p.URL()), false},
		{"down", "https://ci:" + secret + "@" + loopback.UnusedAddr(t), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := checktest.New(t)
			w.Setenv("GOPROXY="+tt.goproxy+",direct", "GOSUMDB=off")
			if tt.trusted {
				w.Setenv("SSL_CERT_FILE=" + p.CAFile())
			} else {
				w.Unsetenv("SSL_CERT_FILE")
				w.Unsetenv("SSL_CERT_DIR")
			}
			for _, c := range Checks() {
				res := w.Run(c)
				if checktest.EvidenceContains(res, secret) || strings.Contains(res.Fix, secret) {
					t.Errorf("%s reports the proxy's password: %s / %v / %s", c.ID, res.Summary, res.Evidence, res.Fix)
				}
				if res.Status != check.Skip && !checktest.EvidenceContains(res, "ci:***@") {
					t.Errorf("%s does not name the proxy (redacted): %s / %v", c.ID, res.Summary, res.Evidence)
				}
			}
		})
	}
}
