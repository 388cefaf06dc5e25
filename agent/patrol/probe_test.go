package patrol

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/gopatrol/gopatrol/agent/check"
)

func probeOnce(t *testing.T, e *Engine, rule string) Result {
	t.Helper()
	c, err := e.EvaluateAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Results {
		if r.Rule == rule {
			return r
		}
	}
	t.Fatalf("rule %s not in %+v", rule, c.Results)
	return Result{}
}

// evalAll evaluates every rule of e once and returns the results by rule.
func evalAll(t *testing.T, e *Engine) map[string]Result {
	t.Helper()
	c, err := e.EvaluateAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Result{}
	for _, r := range c.Results {
		got[r.Rule] = r
	}
	return got
}

func engineFor(t *testing.T, rules string, cfg Config) *Engine {
	t.Helper()
	dir := t.TempDir()
	writeRules(t, dir, "r.yaml", rules)
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Load(dir); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestHTTPRule(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	e := engineFor(t, fmt.Sprintf(`
- {name: up, type: http, target: "%[1]s/"}
- {name: down, type: http, target: "%[1]s/down"}
- {name: status, type: http, target: "%[1]s/down", query: status, threshold: "ge(500)"}
- {name: slow, type: http, target: "%[1]s/", query: latency, threshold: "gt(5)"}
- {name: refused, type: http, target: "%[2]s/"}
`, srv.URL, closed.URL), Config{})
	got := evalAll(t, e)
	if r := got["up"]; r.Value != 1 || r.Breach || !strings.Contains(r.Message, "200") {
		t.Errorf("up = %+v", r)
	}
	if r := got["down"]; r.Value != 0 || !r.Breach {
		t.Errorf("down = %+v", r)
	}
	if r := got["status"]; r.Value != 503 || !r.Breach {
		t.Errorf("status = %+v", r)
	}
	if r := got["slow"]; r.Value <= 0 || r.Value > 5 || r.Breach {
		t.Errorf("latency = %+v", r)
	}
	if r := got["refused"]; r.Value != 0 || !r.Breach || !strings.Contains(r.Message, "refused") {
		t.Errorf("refused = %+v", r)
	}
}

// dnsServer answers A queries for the names in addrs on a real UDP socket on
// 127.0.0.1, with NXDOMAIN for the rest.
func dnsServer(t *testing.T, addrs map[string][4]byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			a, ok := addrs[q.Name.String()]
			rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeSuccess}
			if !ok {
				rh.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, rh)
			b.EnableCompression()
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			if ok && q.Type == dnsmessage.TypeA {
				b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a})
			}
			msg, err := b.Finish()
			if err == nil {
				pc.WriteTo(msg, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

func TestDNSRule(t *testing.T) {
	addr := dnsServer(t, map[string][4]byte{"proxy.example.org.": {192, 0, 2, 7}})
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	e := engineFor(t, `
- {name: proxy, type: dns, target: proxy.example.org, every: 30s}
- {name: gone, type: dns, target: gone.example.org}
- {name: count, type: dns, target: proxy.example.org, query: addresses, threshold: "lt(1)"}
- {name: lat, type: dns, target: proxy.example.org, query: latency, threshold: "gt(1)"}
`, Config{Resolver: res})
	got := evalAll(t, e)
	if r := got["proxy"]; r.Value != 1 || r.Breach {
		t.Errorf("proxy = %+v", r)
	}
	if r := got["gone"]; r.Value != 0 || !r.Breach || !strings.Contains(r.Message, "no such host") {
		t.Errorf("gone = %+v", r)
	}
	if r := got["count"]; r.Value != 1 || r.Breach || !strings.Contains(r.Message, "192.0.2.7") {
		t.Errorf("count = %+v", r)
	}
	if r := got["lat"]; r.Error != "" || r.Value <= 0 || r.Breach {
		t.Errorf("latency = %+v", r)
	}
}

// testCA makes a CA and a leaf for 127.0.0.1 that expires in days.
func testCA(t *testing.T, days int) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "patrol test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "proxy.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Duration(days) * 24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}
}

func tlsServer(t *testing.T, cert tls.Certificate) string {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestTLSRule(t *testing.T) {
	pool, soon := testCA(t, 7)
	_, far := testCA(t, 90) // another CA: its chain does not verify against pool
	addrSoon, addrOther := tlsServer(t, soon), tlsServer(t, far)
	e := engineFor(t, fmt.Sprintf(`
- {name: soon, type: tls, target: "%s"}
- {name: other-ca, type: tls, target: "%s"}
- {name: up, type: tls, target: "%s", query: up}
`, addrSoon, addrOther, addrSoon), Config{TLSRoots: pool})
	got := evalAll(t, e)
	if r := got["soon"]; math.Abs(r.Value-7) > 0.1 || !r.Breach || !strings.Contains(r.Message, "proxy.test") {
		t.Errorf("soon = %+v", r)
	}
	if r := got["other-ca"]; r.Value != 0 || !r.Breach || !strings.Contains(r.Message, "does not verify") {
		t.Errorf("other CA = %+v", r)
	}
	if r := got["up"]; r.Value != 1 || r.Breach {
		t.Errorf("up = %+v", r)
	}
}

func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecRule(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	ok := script(t, dir, "ok", "echo all good; echo second line\n")
	breach := script(t, dir, "breach", "echo 'GOCACHE not writable'\nexit 1\n")
	odd := script(t, dir, "odd", "echo confused\nexit 3\n")
	// Starts a grandchild that would outlive the rule, then hangs.
	hang := script(t, dir, "hang", "sleep 300 &\necho $! > "+pidFile+"\necho started\nsleep 300\n")
	loud := script(t, dir, "loud", "head -c 1000000 /dev/zero | tr '\\0' x\nexit 1\n")
	e := engineFor(t, fmt.Sprintf(`
- {name: ok, type: exec, target: "%s"}
- {name: breach, type: exec, target: "%s"}
- {name: odd, type: exec, target: "%s"}
- {name: hang, type: exec, target: "%s", timeout: 500ms}
- {name: loud, type: exec, target: "%s"}
`, ok, breach, odd, hang, loud), Config{AllowExec: true})
	got := evalAll(t, e)
	if r := got["ok"]; r.Value != 0 || r.Breach || r.Message != "all good" {
		t.Errorf("ok = %+v", r)
	}
	if r := got["breach"]; r.Value != 1 || !r.Breach || r.Message != "GOCACHE not writable" {
		t.Errorf("breach = %+v", r)
	}
	if r := got["odd"]; !strings.Contains(r.Error, "exit status 3") || r.Breach {
		t.Errorf("odd = %+v", r)
	}
	if r := got["hang"]; !strings.Contains(r.Error, "timed out") || r.Duration > 5*time.Second {
		t.Errorf("hang = %+v", r)
	}
	if r := got["loud"]; r.Value != 1 || len(r.Message) > execMessageCap+3 {
		t.Errorf("loud: value %g, message %d bytes", r.Value, len(r.Message))
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the hung rule's grandchild %d outlived it", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCheckRule(t *testing.T) {
	var mu sync.Mutex
	status := map[string]check.Status{"gocache.writable": check.Pass, "gocache.selinux": check.Warn, "go.binary": check.Fail}
	mk := func(id string) check.Check {
		return check.Check{ID: id, Title: id, Run: func(context.Context, *check.Env) check.Result {
			mu.Lock()
			defer mu.Unlock()
			if status[id] == check.Error {
				panic("check broke")
			}
			return check.Result{Status: status[id], Summary: id + " is " + string(status[id])}
		}}
	}
	doc := Doctor{Env: &check.Env{}, Checks: []check.Check{mk("go.binary"), mk("gocache.writable"), mk("gocache.selinux")}}
	e := engineFor(t, `
- {name: cache, type: check, target: "gocache.*", threshold: "ge(1)", labels: {service: build}}
- {name: binary, type: check, target: go.binary}
`, Config{Checks: doc})
	c, err := e.EvaluateAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Result{}
	for _, r := range c.Results {
		got[r.Rule+"/"+r.Labels["check"]] = r
	}
	if len(got) != 3 {
		t.Fatalf("results = %+v", c.Results)
	}
	if r := got["cache/gocache.selinux"]; r.Value != 1 || !r.Breach || r.Labels["service"] != "build" {
		t.Errorf("selinux = %+v", r)
	}
	if r := got["cache/gocache.writable"]; r.Value != 0 || r.Breach {
		t.Errorf("writable = %+v", r)
	}
	if r := got["binary/go.binary"]; r.Value != 2 || !r.Breach {
		t.Errorf("binary = %+v", r)
	}
	mu.Lock()
	status["go.binary"] = check.Error
	mu.Unlock()
	if r := probeOnce(t, e, "binary"); r.Error == "" || !r.Firing {
		t.Errorf("a check that could not run: %+v (want unknown, episode kept)", r)
	}
	dir := t.TempDir()
	writeRules(t, dir, "r.yaml", "- {name: x, type: check, target: \"nope.*\"}\n")
	if err := e.Load(dir); err == nil || !strings.Contains(err.Error(), "matches no check ID") {
		t.Errorf("glob matching nothing: %v", err)
	}
}

// instruments is a MetricSource the test moves like the agent's meter.
type instruments struct {
	mu  sync.Mutex
	pts []MetricPoint
}

func (m *instruments) Snapshot() []MetricPoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]MetricPoint(nil), m.pts...)
}

func TestMetricRule(t *testing.T) {
	clk := &clock{t: time.Date(2026, 6, 12, 14, 0, 0, 0, time.UTC)}
	ins := &instruments{}
	set := func(eacces, enoent float64, counts []uint64) {
		ins.mu.Lock()
		ins.pts = []MetricPoint{
			{Name: "gopatrol.file_access.failures", Attrs: map[string]string{"error.type": "EACCES", "gopatrol.file.class": "gocache"}, Value: eacces},
			{Name: "gopatrol.file_access.failures", Attrs: map[string]string{"error.type": "ENOENT", "gopatrol.file.class": "gocache"}, Value: enoent},
			{Name: "gopatrol.toolchain.invocation.duration", Attrs: map[string]string{"process.executable.name": "go"},
				Bounds: []float64{1, 2, 4}, Counts: counts},
		}
		ins.mu.Unlock()
	}
	e := engineFor(t, `
- name: eacces
  type: metric
  query: 'increase(gopatrol.file_access.failures{error.type="EACCES",gopatrol.file.class="gocache"}[1m])'
  threshold: gt(5)
- name: rate
  type: metric
  query: 'rate(gopatrol.file_access.failures{error.type!="EACCES"}[2m])'
  threshold: gt(1)
- name: p95
  type: metric
  query: 'quantile(0.95, gopatrol.toolchain.invocation.duration{process.executable.name="go"}[10m])'
  threshold: gt(3)
- name: total
  type: metric
  query: 'gopatrol.file_access.failures'
  threshold: gt(1000)
`, Config{Metrics: ins, Now: clk.Now})
	set(10, 0, []uint64{0, 0, 0, 0})
	r := evalAll(t, e)
	if r["eacces"].Error == "" || r["total"].Value != 10 {
		t.Errorf("first snapshot: %+v", r)
	}
	clk.Add(30 * time.Second)
	set(13, 60, []uint64{10, 5, 4, 1}) // 20 invocations: p95 is the 19th, in (2,4]
	r = evalAll(t, e)
	if r["eacces"].Value != 3 || r["eacces"].Breach {
		t.Errorf("increase after 30s = %+v", r["eacces"])
	}
	if r["rate"].Value != 2 || !r["rate"].Breach {
		t.Errorf("rate = %+v", r["rate"])
	}
	// rank 19 of 20: 15 below 2, 4 in (2,4] → 2 + 2·(19−15)/4 = 4.
	if math.Abs(r["p95"].Value-4) > 1e-9 || !r["p95"].Breach {
		t.Errorf("p95 = %+v", r["p95"])
	}
	clk.Add(60 * time.Second)
	set(25, 60, []uint64{30, 5, 4, 1})
	r = evalAll(t, e)
	// The window [now−1m, now] starts at the 30s sample (13): 25 − 13.
	if r["eacces"].Value != 12 || !r["eacces"].Breach {
		t.Errorf("increase over 1m = %+v", r["eacces"])
	}
	clk.Add(60 * time.Second)
	set(2, 60, []uint64{30, 5, 4, 1}) // the agent restarted: the counter reset
	if v := evalAll(t, e)["eacces"].Value; v != 2 {
		t.Errorf("increase across a reset = %g, want 2", v)
	}
}
