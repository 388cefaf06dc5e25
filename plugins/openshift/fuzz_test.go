package openshift

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// The API server's answers are untrusted JSON: whatever they hold, Detect
// must not panic, and what it reports must hold together: a provider
// only with its OpenShift platform, no blank value.
func FuzzDetect(f *testing.F) {
	f.Add(200, `{"status": {"infrastructureName": "prod-x7k2p", "platformStatus": {"type": "AWS", "aws": {"region": "eu-central-1"}}}}`,
		`{"metadata": {"labels": {"topology.kubernetes.io/region": "eu-central-1", "topology.kubernetes.io/zone": "eu-central-1b"}}}`)
	f.Add(200, `{"status": {"platformStatus": {"type": "Azure"}}}`, `{"metadata": {"labels": {"topology.kubernetes.io/zone": " "}}}`)
	f.Add(404, ``, `{"metadata": null}`)
	f.Add(200, `{"status": {"platformStatus": {"type": "BareMetal", "gcp": {"region": "\t"}}}}`, `[]`)
	var mu sync.Mutex
	infraCode, infraBody, nodeBody := 200, "", ""
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.URL.Path == infraPath:
			w.WriteHeader(infraCode)
			w.Write([]byte(infraBody))
		case r.URL.Path == "/api/v1/nodes/node-1":
			w.Write([]byte(nodeBody))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := f.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("sa-token\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for k, v := range map[string]string{hostEnv: host, portEnv: port, caEnv: filepath.Join(dir, "ca.crt"),
		tokenEnv: filepath.Join(dir, "token"), nodeEnv: "node-1"} {
		os.Setenv(k, v)
		defer os.Unsetenv(k)
	}
	f.Fuzz(func(t *testing.T, code int, infra, node string) {
		if code != 200 && code != 404 {
			return
		}
		mu.Lock()
		infraCode, infraBody, nodeBody = code, infra, node
		mu.Unlock()
		attrs, err := probe{}.Detect(context.Background())
		if err != nil {
			return
		}
		if (attrs[sdk.CloudProvider] == "") != (attrs[sdk.CloudPlatform] == "") {
			t.Fatalf("detected %v: a provider without its platform or the reverse", attrs)
		}
		for k, v := range attrs {
			if strings.TrimSpace(v) == "" {
				t.Fatalf("detected %v: %s is blank", attrs, k)
			}
		}
	})
}
