package tlscheck

import (
	"crypto/tls"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

func TestSessionReuseOwnServerPasses(t *testing.T) {
	w := checktest.New(t)
	res := w.Run(checktest.Find(t, Checks(), "tls.session-reuse"))
	if res.Status != check.Pass {
		t.Fatalf("status %s, want pass", res.Status)
	}
	if r := res.Evidence["resumed"]; r != "5" && r != "4" {
		t.Errorf("resumed %q, want 4 or 5", r)
	}
	if res.Evidence["tls_version"] != "TLS 1.2" || res.Evidence["protocol"] != "HTTP/1.1" {
		t.Errorf("evidence %v: want TLS 1.2 over HTTP/1.1", res.Evidence)
	}
}

// startWithCA starts a loopback server and writes its CA for
// GOPATROL_TLS_REUSE_CA.
func startWithCA(t *testing.T, configure func(*tls.Config)) (addr, caFile string) {
	t.Helper()
	srv, _, err := startTLSServer(configure)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	checktest.WriteFile(t, caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.CA.Raw})), 0o644)
	return srv.Addr, caFile
}

func TestSessionReuseTicketsOffFails(t *testing.T) {
	addr, ca := startWithCA(t, func(c *tls.Config) { c.SessionTicketsDisabled = true })
	w := checktest.New(t)
	w.Setenv(reuseAddrEnv+"="+addr, reuseCAEnv+"="+ca)
	c := checktest.Find(t, Checks(), "tls.session-reuse")
	res := w.Run(c)
	if res.Status != check.Fail {
		t.Fatalf("status %s, want fail", res.Status)
	}
	for k, want := range map[string]string{"server_address": addr, "resumed": "0", "attempts": "6", "tls_version": "TLS 1.2"} {
		if res.Evidence[k] != want {
			t.Errorf("evidence %s=%q, want %q", k, res.Evidence[k], want)
		}
	}
	// The server's code is its owner's to change: the fix names it as
	// a placeholder, and the harness reports it cannot be automated.
	if checktest.FixRerun(t, w, c, res) || !strings.Contains(res.Fix, addr) {
		t.Errorf("fix %q: want one that names the server at %s and cannot be automated", res.Fix, addr)
	}
}

func TestSessionReuseInjectedServerPasses(t *testing.T) {
	addr, ca := startWithCA(t, func(*tls.Config) {})
	w := checktest.New(t)
	w.Setenv(reuseAddrEnv+"="+addr, reuseCAEnv+"="+ca)
	res := w.Run(checktest.Find(t, Checks(), "tls.session-reuse"))
	if res.Status != check.Pass || res.Evidence["server_address"] != addr {
		t.Fatalf("status %s evidence %v, want pass against %s", res.Status, res.Evidence, addr)
	}
}

func TestSessionReuseBadInput(t *testing.T) {
	for _, tc := range []struct{ name, addr, ca, want string }{
		{"addr without port", "127.0.0.1", "", "127.0.0.1"},
		{"missing CA file", "127.0.0.1:1", "/nonexistent/ca.pem", "/nonexistent/ca.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := checktest.New(t)
			w.Setenv(reuseAddrEnv + "=" + tc.addr)
			if tc.ca != "" {
				w.Setenv(reuseCAEnv + "=" + tc.ca)
			}
			res := w.Run(checktest.Find(t, Checks(), "tls.session-reuse"))
			if res.Status != check.Error || !checktest.EvidenceContains(res, tc.want) || res.Fix == "" {
				t.Errorf("got %s %q fix %q, want error naming %s with a fix", res.Status, res.Summary, res.Fix, tc.want)
			}
		})
	}
}
