package agent

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/otelcfg"
)

// /healthz is 200 while the scheduler's loop ticks and 503 naming it once
// it has not for three periods: here its clock's timers stop firing, as
// for a loop stuck somewhere, while time goes on.
func TestHealthzStalledScheduler(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	cfg := Default()
	cfg.Checks.Every = time.Minute
	a := &agent{clock: clock, plan: &plan{otel: otelcfg.Config{Interval: time.Minute}}}
	a.cfg.Store(&cfg)
	a.sched = NewScheduler(clock, Schedule{Every: time.Minute}, func(context.Context, CheckSet) {}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.sched.Loop(ctx, ctx); close(done) }()
	defer func() { cancel(); <-done; a.sched.Wait() }()
	a.up.Store(true)
	srv := httptest.NewServer(a.mux())
	defer srv.Close()

	healthz := func() (int, string) {
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// The export loop keeps ticking throughout; only the scheduler stalls.
	exportTicks := func() {
		a.mu.Lock()
		a.exportTick = clock.Now()
		a.mu.Unlock()
	}
	for range 5 { // healthy: every period the loop wakes and ticks
		<-clock.waiting
		clock.Advance(time.Minute)
		exportTicks()
		waitFor(t, func() bool { return a.sched.Status().LastTick.Equal(clock.Now()) })
		if code, body := healthz(); code != http.StatusOK {
			t.Fatalf("healthy loop: /healthz %d %s", code, body)
		}
	}
	clock.Freeze()
	clock.Advance(2 * time.Minute)
	exportTicks()
	if code, body := healthz(); code != http.StatusOK {
		t.Fatalf("two periods late is within three: /healthz %d %s", code, body)
	}
	clock.Advance(2 * time.Minute)
	exportTicks()
	code, body := healthz()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "scheduler") || strings.Contains(body, "export") {
		t.Errorf("stalled scheduler: /healthz %d %q, want 503 naming the scheduler only", code, body)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in a minute")
		}
	}
}
