package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/internal/secret"
)

// fastRetry keeps the tests' retries quick; the logic is the production one.
var fastRetry = RetryConfig{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, CallTimeout: 500 * time.Millisecond, Poll: 50 * time.Millisecond}

// syncBuffer is a log sink the workers and the test share.
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

// running is a Notifier whose Run loop the test started.
type running struct {
	*Notifier
	logs *syncBuffer
	stop func()
}

// start creates a Notifier on dir and runs it until stop or the test's
// end. Every log line is kept, at debug level, so that tests can check
// that no secret reached them.
func start(t *testing.T, cfg Config, dir string) *running {
	t.Helper()
	return startWith(t, cfg, dir, nil)
}

// startWith is start with a set-up of the Notifier before Run.
func startWith(t *testing.T, cfg Config, dir string, setup func(*Notifier)) *running {
	t.Helper()
	if cfg.Retry == (RetryConfig{}) {
		cfg.Retry = fastRetry
	}
	logs := &syncBuffer{}
	n, err := New(cfg, dir, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return &running{Notifier: n, logs: logs, stop: stop}
}

// request is one call a loopback target received.
type request struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// recorder is a loopback target: it records each request and answers
// with respond (default 200 "ok").
type recorder struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []request
	respond func(r request) (int, string)
}

func newRecorder(t *testing.T, respond func(r request) (int, string)) *recorder {
	t.Helper()
	rec := &recorder{respond: respond}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, req)
		rec.mu.Unlock()
		status, answer := http.StatusOK, "ok"
		if rec.respond != nil {
			status, answer = rec.respond(req)
		}
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

// waitUntil polls cond until it holds or fails t after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// secretFile writes a secret to a file and returns its Source.
func secretFile(t *testing.T, value string) secret.Source {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return secret.Source{File: p}
}

// noSecrets fails t if any secret appears in the logs or the outbox.
func noSecrets(t *testing.T, r *running, secrets ...string) {
	t.Helper()
	logs := r.logs.String()
	var files strings.Builder
	filepath.WalkDir(r.Outbox().Dir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			files.Write(b)
		}
		return nil
	})
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a secret reached the logs:\n%s", logs)
		}
		if strings.Contains(files.String(), s) {
			t.Errorf("a secret reached the outbox files")
		}
	}
}

// event is a firing event for rule, notifying to.
func event(rule string, to ...string) Event {
	return Event{
		Kind:     Firing,
		Rule:     rule,
		Group:    "service=mysql",
		Stage:    "active",
		Node:     "node-1",
		Labels:   map[string]string{"service": "mysql", "region": "cn-hangzhou"},
		Cloud:    map[string]string{"cloud.provider": "alibaba_cloud", "cloud.region": "cn-hangzhou"},
		Value:    75,
		Summary:  "replication delay 75s > 60s",
		StartsAt: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
		Notify:   to,
	}
}

func resolved(ev Event) Event {
	ev.Kind = Resolved
	ev.EndsAt = ev.StartsAt.Add(10 * time.Minute)
	return ev
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, b)
	}
}
