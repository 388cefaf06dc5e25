package proxytest_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check/proxy/proxytest"
)

// goCmd runs the real go command in a clean environment of its own (no
// GOENV file, a temporary module cache) plus env.
func goCmd(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go on PATH: %v", err)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"GOENV=off",
		"GOTOOLCHAIN=local",
		"GOCACHE=" + t.TempDir(),
		"GOMODCACHE=" + proxytest.TempModCache(t),
	}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestGoModDownload(t *testing.T) {
	p := proxytest.New(t)
	p.Module("example.com/Hello", "v1.0.0", map[string]string{
		"hello.go": "package hello\n\nconst Greeting = \"hi\"\n",
	})
	p.Module("example.com/Hello", "v1.1.0", map[string]string{
		"hello.go": "package hello\n\nconst Greeting = \"hello\"\n",
	})

	out, err := goCmd(t, t.TempDir(), p.Env(), "mod", "download", "-json", "example.com/Hello@latest")
	if err != nil {
		t.Fatalf("go mod download through the proxy: %v\n%s", err, out)
	}
	var dl struct{ Path, Version, Dir, Error string }
	if err := json.Unmarshal([]byte(out), &dl); err != nil {
		t.Fatalf("go mod download -json: %v\n%s", err, out)
	}
	if dl.Version != "v1.1.0" || dl.Error != "" {
		t.Fatalf("downloaded %+v, want v1.1.0 as latest", dl)
	}
	b, err := os.ReadFile(filepath.Join(dl.Dir, "hello.go"))
	if err != nil || !strings.Contains(string(b), `"hello"`) {
		t.Fatalf("extracted hello.go = %q, %v", b, err)
	}
	if p.Requests() == 0 {
		t.Fatal("Requests() = 0 after a download")
	}
}

func TestGoModDownloadWithoutCA(t *testing.T) {
	p := proxytest.New(t)
	p.Module("example.com/hello", "v1.0.0", map[string]string{"hello.go": "package hello\n"})
	var env []string
	for _, kv := range p.Env() {
		if !strings.HasPrefix(kv, "SSL_CERT_FILE=") {
			env = append(env, kv)
		}
	}
	// An empty bundle: the machine's own roots must not matter.
	empty := filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(empty, nil, 0o644)
	env = append(env, "SSL_CERT_FILE="+empty, "SSL_CERT_DIR="+t.TempDir())
	out, err := goCmd(t, t.TempDir(), env, "mod", "download", "example.com/hello@v1.0.0")
	if err == nil {
		t.Fatalf("go mod download without the CA succeeded:\n%s", out)
	}
	if !strings.Contains(out, "x509: certificate signed by unknown authority") {
		t.Fatalf("want an x509 unknown authority error, got:\n%s", out)
	}
}

func TestProtocol(t *testing.T) {
	p := proxytest.New(t)
	p.Module("example.com/Hello", "v1.0.0", map[string]string{"hello.go": "package hello\n"})
	p.Module("example.com/Hello", "v1.0.1-pre", map[string]string{"hello.go": "package hello\n"})
	p.Module("example.com/pre", "v0.1.0-beta", nil)
	p.Module("example.com/pre", "v0.1.0-alpha", nil)
	c := p.Client()
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/example.com/!hello/@v/list", 200, "v1.0.0\nv1.0.1-pre\n"},
		{"/example.com/!hello/@v/v1.0.0.info", 200, `"Version":"v1.0.0"`},
		{"/example.com/!hello/@v/v1.0.0.mod", 200, "module example.com/Hello\n"},
		{"/example.com/!hello/@latest", 200, `"Version":"v1.0.0"`},
		{"/example.com/pre/@latest", 200, `"Version":"v0.1.0-beta"`},
		{"/example.com/pre/@v/v0.1.0-alpha.zip", 200, "PK"},
		{"/example.com/!hello/@v/v9.9.9.info", 404, "unknown revision"},
		{"/example.com/Hello/@v/list", 400, "bad module path"},
		{"/example.com/other/@v/list", 404, "not found"},
		{"/", 404, "not a module proxy path"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := c.Get(p.URL() + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("GET %s = %d %q, want %d containing %q", tt.path, resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestFailureWorlds(t *testing.T) {
	tests := []struct {
		name    string
		opts    []proxytest.Option
		wantErr string // substring of the verification error; "" = verifies
	}{
		{"healthy", nil, ""},
		{"self-signed", []proxytest.Option{proxytest.WithSelfSigned()}, ""},
		{"expired", []proxytest.Option{proxytest.WithExpiredCert()}, "certificate has expired"},
		{"other name", []proxytest.Option{proxytest.WithServerName("elsewhere.test")}, "cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := proxytest.New(t, tt.opts...)
			conn, err := tls.Dial("tcp", p.Addr(), &tls.Config{RootCAs: p.CAPool(), ServerName: "127.0.0.1"})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("dial with the CA: %v", err)
				}
				conn.Close()
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("dial: %v, want error containing %q", err, tt.wantErr)
			}
			// Without the anchor nothing verifies.
			_, err = tls.Dial("tcp", p.Addr(), &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1"})
			var unknown x509.UnknownAuthorityError
			var invalid x509.CertificateInvalidError
			var host x509.HostnameError
			if !errors.As(err, &unknown) && !errors.As(err, &invalid) && !errors.As(err, &host) {
				t.Fatalf("dial without the anchor: %v, want an x509 error", err)
			}
		})
	}

	t.Run("server name", func(t *testing.T) {
		p := proxytest.New(t, proxytest.WithServerName("elsewhere.test"))
		conn, err := tls.Dial("tcp", p.Addr(), &tls.Config{RootCAs: p.CAPool(), ServerName: p.ServerName()})
		if err != nil {
			t.Fatalf("dial with SNI %s: %v", p.ServerName(), err)
		}
		conn.Close()
	})

	t.Run("status", func(t *testing.T) {
		p := proxytest.New(t, proxytest.WithStatus(http.StatusGone))
		p.Module("example.com/hello", "v1.0.0", nil)
		resp, err := p.Client().Get(p.URL() + "/example.com/hello/@v/list")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusGone {
			t.Fatalf("status %d, want 410", resp.StatusCode)
		}
	})
}
