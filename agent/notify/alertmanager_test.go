package notify

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/internal/servertest"
)

// amGettable is the part of gettableAlert the test reads.
type amGettable struct {
	Labels   map[string]string `json:"labels"`
	StartsAt time.Time         `json:"startsAt"`
	EndsAt   time.Time         `json:"endsAt"`
	Status   struct {
		State      string   `json:"state"`
		SilencedBy []string `json:"silencedBy"`
	} `json:"status"`
}

// amGet reads path from the Alertmanager v2 API into v.
func amGet(t *testing.T, base, path string, v any) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// TestAlertmanager: a real Alertmanager receives the firing alert with
// its labels, shows it silenced by the silence the Notifier creates, and
// ends it when the episode resolves.
func TestAlertmanager(t *testing.T) {
	am := servertest.Alertmanager(t)
	r := start(t, Config{Alertmanager: &AlertmanagerConfig{URL: am.URL}}, t.TempDir())
	ev := event("mysql-replication-delay", "alertmanager")
	ev.Stage = "canary"
	ev.StartsAt = time.Now().Add(-time.Minute).Truncate(time.Second)
	ev.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	if _, err := r.Notify(ev); err != nil {
		t.Fatal(err)
	}
	filter := "/api/v2/alerts?filter=" + url.QueryEscape(`rule="mysql-replication-delay"`)
	var alerts []amGettable
	waitUntil(t, 5*time.Second, "the alert in Alertmanager", func() bool {
		amGet(t, am.URL, filter, &alerts)
		return len(alerts) == 1
	})
	a := alerts[0]
	want := map[string]string{
		"alertname": "mysql-replication-delay", "rule": "mysql-replication-delay", "group": "service=mysql",
		"stage": "canary", "node": "node-1", "service": "mysql", "region": "cn-hangzhou",
		"cloud_provider": "alibaba_cloud", "cloud_region": "cn-hangzhou",
	}
	for k, v := range want {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], v, a.Labels)
		}
	}
	if a.Status.State != "active" || !a.StartsAt.Equal(ev.StartsAt) || a.EndsAt.Before(time.Now().Add(23*time.Hour)) {
		t.Errorf("alert state %s, startsAt %s (want %s), endsAt %s (want the 24h firing TTL)", a.Status.State, a.StartsAt, ev.StartsAt, a.EndsAt)
	}

	id, err := r.Silence(t.Context(), Silence{
		Matchers: map[string]string{"rule": "mysql-replication-delay", "stage": "canary"},
		StartsAt: time.Now(), EndsAt: time.Now().Add(time.Hour),
		Comment: "canary of mysql-replication-delay",
	})
	if err != nil {
		t.Fatal(err)
	}
	var sil struct {
		ID       string `json:"id"`
		Status   struct{ State string }
		Matchers []amMatcher
		Comment  string
	}
	amGet(t, am.URL, "/api/v2/silence/"+id, &sil)
	if sil.ID != id || sil.Status.State != "active" || len(sil.Matchers) != 2 || sil.Comment != "canary of mysql-replication-delay" {
		t.Errorf("silence %s = %+v", id, sil)
	}
	waitUntil(t, 5*time.Second, "the alert silenced", func() bool {
		amGet(t, am.URL, filter, &alerts)
		return len(alerts) == 1 && alerts[0].Status.State == "suppressed" && len(alerts[0].Status.SilencedBy) == 1 && alerts[0].Status.SilencedBy[0] == id
	})
	if _, err := r.Silence(t.Context(), Silence{StartsAt: time.Now(), EndsAt: time.Now().Add(time.Hour)}); err == nil {
		t.Error("a silence without matchers was created")
	}

	res := resolved(ev)
	res.EndsAt = time.Now().Add(-time.Second).Truncate(time.Second)
	if _, err := r.Notify(res); err != nil {
		t.Fatal(err)
	}
	// The v2 API lists only alerts whose endsAt is still ahead: the
	// alert, listed (and silenced) a moment ago, is gone once resolved.
	waitUntil(t, 5*time.Second, "the alert resolved", func() bool {
		amGet(t, am.URL, filter, &alerts)
		return len(alerts) == 0
	})
	// Another rule's alert, still firing, is listed: the filter works.
	other := event("dns-latency", "alertmanager")
	other.StartsAt = time.Now().Truncate(time.Second)
	if _, err := r.Notify(other); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the other alert", func() bool {
		amGet(t, am.URL, "/api/v2/alerts?filter="+url.QueryEscape(`rule="dns-latency"`), &alerts)
		return len(alerts) == 1 && alerts[0].Status.State == "active"
	})
	noSecrets(t, r)
}
