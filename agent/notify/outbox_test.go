package notify

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// webhookAt is a webhook target whose server the test starts and stops
// on a fixed loopback address, to take the target down and bring it back.
type webhookAt struct {
	addr string
	srv  *httptest.Server
	got  atomic.Int64
	ids  chan string
}

func newWebhookAt(t *testing.T) *webhookAt {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // down until up() is called
	return &webhookAt{addr: addr, ids: make(chan string, 100)}
}

func (w *webhookAt) up(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", w.addr)
	if err != nil {
		t.Fatal(err)
	}
	w.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var m Message
		body, _ := io.ReadAll(r.Body)
		decodeJSON(t, body, &m)
		w.got.Add(1)
		w.ids <- m.Rule + "/" + string(m.Kind)
	})}}
	w.srv.Start()
	t.Cleanup(w.srv.Close)
}

func (w *webhookAt) config(t *testing.T) Config {
	return Config{Webhooks: map[string]WebhookConfig{"hook": {URL: "http://" + w.addr + "/", Secret: secretFile(t, "k")}}}
}

func pending(t *testing.T, o *Outbox) int {
	t.Helper()
	es, err := o.Pending()
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestOutboxOutage: while the target is down, messages wait on disk and
// are retried; when it comes back they are delivered in order, each once.
func TestOutboxOutage(t *testing.T) {
	hook := newWebhookAt(t)
	r := start(t, hook.config(t), t.TempDir())
	ev := event("disk-full", "webhook:hook")
	for _, e := range []Event{ev, resolved(ev)} {
		if n, err := r.Notify(e); err != nil || n != 1 {
			t.Fatalf("Notify = %d, %v", n, err)
		}
	}
	waitUntil(t, 5*time.Second, "a retry logged", func() bool {
		return strings.Count(r.logs.String(), "will retry") >= 2
	})
	if n := pending(t, r.Outbox()); n != 2 {
		t.Fatalf("%d pending while the target is down, want 2", n)
	}
	hook.up(t)
	waitUntil(t, 5*time.Second, "delivery after the outage", func() bool { return hook.got.Load() == 2 })
	if a, b := <-hook.ids, <-hook.ids; a != "disk-full/firing" || b != "disk-full/resolved" {
		t.Errorf("delivered %s then %s, want firing then resolved", a, b)
	}
	waitUntil(t, 2*time.Second, "an empty outbox", func() bool { return pending(t, r.Outbox()) == 0 })
	if n, _ := r.Notify(ev); n != 0 {
		t.Errorf("a delivered episode was queued again")
	}
	time.Sleep(100 * time.Millisecond)
	if n := hook.got.Load(); n != 2 {
		t.Errorf("%d deliveries, want 2", n)
	}
}

// TestOutboxRestart: a process queues while the target is down and stops;
// a new Notifier on the same directory delivers once the target is up.
func TestOutboxRestart(t *testing.T) {
	hook := newWebhookAt(t)
	dir := t.TempDir()
	first := start(t, hook.config(t), dir)
	if _, err := first.Notify(event("cert-expiry", "webhook:hook")); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Notify(event("dns-latency", "webhook:hook")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "a failed attempt", func() bool { return strings.Contains(first.logs.String(), "will retry") })
	first.stop()
	// What a crash between CreateTemp and rename leaves behind.
	var tdir string
	ents, _ := os.ReadDir(filepath.Join(dir, "pending"))
	for _, e := range ents {
		tdir = filepath.Join(dir, "pending", e.Name())
	}
	if err := os.WriteFile(filepath.Join(tdir, ".tmp-123"), []byte(`{"trunc`), 0o600); err != nil {
		t.Fatal(err)
	}
	// A pending file that does not parse (written by hand, or a disk
	// error): set aside in failed/, not retried, not blocking the queue.
	if err := os.WriteFile(filepath.Join(tdir, "00000000000000000001-bad.json"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}

	hook.up(t)
	second := start(t, hook.config(t), dir)
	waitUntil(t, 5*time.Second, "delivery by the second process", func() bool { return hook.got.Load() == 2 })
	if a, b := <-hook.ids, <-hook.ids; a != "cert-expiry/firing" || b != "dns-latency/firing" {
		t.Errorf("delivered %s then %s, want the queue order", a, b)
	}
	waitUntil(t, 2*time.Second, "an empty outbox", func() bool { return pending(t, second.Outbox()) == 0 })
	if _, err := os.Stat(filepath.Join(dir, "failed", "00000000000000000001-bad.json")); err != nil {
		t.Errorf("the unreadable pending file is not in failed/: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tdir, ".tmp-123")); !os.IsNotExist(err) {
		t.Errorf("the crash's temporary file was not cleaned: %v", err)
	}
	// Dedup survives the restart too.
	if n, _ := second.Notify(event("cert-expiry", "webhook:hook")); n != 0 {
		t.Error("an episode delivered before the restart was queued again")
	}
}

// TestIsolation: targets that hang, answer 500 or answer garbage do not
// hold up a healthy one, and each call ends at its deadline.
func TestIsolation(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	var fiveHundreds atomic.Int64
	broken := newRecorder(t, func(request) (int, string) { fiveHundreds.Add(1); return 500, "internal error" })
	garbage := newRecorder(t, func(request) (int, string) { return 201, "\x00\xffnot json<html>" })
	healthy := newRecorder(t, nil)
	cfg := Config{
		Webhooks: map[string]WebhookConfig{
			"hang":    {URL: hang.URL, Secret: secretFile(t, "k")},
			"broken":  {URL: broken.URL, Secret: secretFile(t, "k")},
			"healthy": {URL: healthy.URL, Secret: secretFile(t, "k")},
		},
		Jira: &JiraConfig{URL: garbage.URL, Token: secretFile(t, "t")},
	}
	r := start(t, cfg, t.TempDir())
	for i, rule := range []string{"a", "b", "c"} {
		ev := event(rule, "webhook:hang", "webhook:broken", "jira:OPS", "webhook:healthy")
		ev.StartsAt = ev.StartsAt.Add(time.Duration(i) * time.Minute)
		if _, err := r.Notify(ev); err != nil {
			t.Fatal(err)
		}
	}
	begin := time.Now()
	waitUntil(t, 3*time.Second, "the healthy target's 3 messages", func() bool { return len(healthy.requests()) == 3 })
	if d := time.Since(begin); d > fastRetry.CallTimeout {
		t.Errorf("healthy target served after %s, longer than one call deadline (%s): held up by the others", d, fastRetry.CallTimeout)
	}
	waitUntil(t, 5*time.Second, "a deadline, 500s and garbage in the log", func() bool {
		l := r.logs.String()
		return strings.Contains(l, "context deadline exceeded") && strings.Contains(l, "HTTP 500") &&
			strings.Contains(l, "not the expected JSON") && fiveHundreds.Load() >= 3
	})
	// Retried with backoff, not hammered: with 20ms..200ms backoff a
	// second holds at most a few dozen attempts.
	if n := fiveHundreds.Load(); n > 60 {
		t.Errorf("%d attempts on the 500ing target: no backoff", n)
	}
	if n := pending(t, r.Outbox()); n != 9 {
		t.Errorf("%d pending, want the 9 undelivered messages kept", n)
	}
}

func TestBackoff(t *testing.T) {
	n := &Notifier{retry: RetryConfig{Initial: 100 * time.Millisecond, Max: 2 * time.Second}}
	for attempt, want := range []time.Duration{100, 200, 400, 800, 1600, 2000, 2000} {
		want *= time.Millisecond
		for range 50 {
			d := n.backoff(attempt)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", attempt, d, want/2, want)
			}
		}
	}
	if d := n.backoff(1000); d > 2*time.Second {
		t.Errorf("backoff(1000) = %s overflows the cap", d)
	}
}

func TestNotifyRefuses(t *testing.T) {
	r := start(t, Config{}, t.TempDir())
	if _, err := r.Notify(Event{Kind: "maybe", Rule: "x"}); err == nil {
		t.Error("accepted kind maybe")
	}
	if _, err := r.Notify(Event{Kind: Firing}); err == nil {
		t.Error("accepted an event without rule")
	}
	shadow := event("x")
	shadow.Stage = "shadow"
	if _, err := r.Notify(shadow); err == nil || !strings.Contains(err.Error(), "shadow") {
		t.Errorf("a shadow rule's event: %v", err)
	}
	_, err := r.Notify(event("x", "webhook:nope"))
	if err == nil || !strings.Contains(err.Error(), "rule x") || !strings.Contains(err.Error(), `no webhook "nope"`) {
		t.Errorf("Notify to an unconfigured target: %v", err)
	}
}
