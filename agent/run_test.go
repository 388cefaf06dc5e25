package agent

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer the agent's logger and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Run in this process (so that -race sees the endpoints, the loops and the
// patrol together): it serves, becomes ready, and returns when its context
// ends.
func TestRunInProcessUntilCancelled(t *testing.T) {
	cfg := Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Sensors.Enabled = false
	cfg.Checks.FullAt = ""
	cfg.Checks.Skip = []string{"env.functional", "cgo.toolchain", "build.pie-aslr", "tls.session-reuse", "module.verify", "module.vendor"}
	env := map[string]string{"OTEL_METRICS_EXPORTER": "none"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	addr := make(chan string, 1)
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Stderr: &logs, Lookup: lookup, Listening: func(a string) { addr <- a }})
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("Run returned before listening: %v\n%s", err, logs.String())
	case <-time.After(time.Minute):
		t.Fatal("never listening")
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
	if _, body := get("/readyz"); !strings.Contains(body, "sensors off: disabled by config") {
		t.Errorf("/readyz %q", body)
	}
	if code, body := get("/status"); code != http.StatusOK || !strings.Contains(body, `"go.binary"`) {
		t.Errorf("/status %d %.500s", code, body)
	}
	if code, _ := get("/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics without the Prometheus exporter: %d, want 404", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
