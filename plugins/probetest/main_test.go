package probetest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/plugins/host"
	"github.com/gopatrol/gopatrol/plugins/probetest"
	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// vendors are the built-in probes: five names of one binary.
var vendors = probetest.Builtins()

// built holds the five probes, compiled once.
var built string

func TestMain(m *testing.M) {
	probetest.InNetns()
	probetest.Main(m, vendors, &built)
}

type hostOpt func(*host.Config)

func callTimeout(d time.Duration) hostOpt { return func(c *host.Config) { c.CallTimeout = d } }

// openHost runs the named probes through plugins/host with env added
// after the off-cloud defaults (later values win).
func openHost(t testing.TB, names []string, env []string, opts ...hostOpt) *host.Host {
	t.Helper()
	cfg := host.Config{Dir: probetest.Dir(t, built, names...), Env: append(probetest.OffCloud(t), env...)}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := host.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	for _, p := range h.Plugins() {
		if _, err := p.Info(); err != nil {
			t.Fatalf("plugin %s did not start: %v", p.Name, err)
		}
	}
	return h
}

// detect runs one probe once.
func detect(t *testing.T, name string, env []string, opts ...hostOpt) host.Result {
	t.Helper()
	h := openHost(t, []string{name}, env, opts...)
	return h.Plugins()[0].Detect(context.Background())
}

func wantAttrs(t *testing.T, r host.Result, want map[string]string) {
	t.Helper()
	if r.Status != sdk.Detected {
		t.Fatalf("%s: status %s (%s), want detected", r.Plugin, r.Status, r.Reason)
	}
	if fmt.Sprint(r.Attributes) != fmt.Sprint(want) {
		t.Errorf("%s attributes:\n got %v\nwant %v", r.Plugin, r.Attributes, want)
	}
}

func wantStatus(t *testing.T, r host.Result, status sdk.Status, reason string) {
	t.Helper()
	if r.Status != status || !strings.Contains(r.Reason, reason) {
		t.Fatalf("%s: status %s, reason %q; want %s with %q", r.Plugin, r.Status, r.Reason, status, reason)
	}
}

// slowHandler answers after d, or when the client gives up.
func slowHandler(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	}
}

func server(t testing.TB, h http.Handler) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// closedAddr is a 127.0.0.1 port with nothing listening.
