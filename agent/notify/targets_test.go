package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/internal/secret"
)

// TestSlack: messages reach the incoming webhook of their channel (the
// channel's own, else the default) as Slack's JSON, once per episode and
// once on resolve; the webhook URL, whose path is its token, never
// reaches logs or outbox.
func TestSlack(t *testing.T) {
	slackAPI := newRecorder(t, nil)
	const dbToken, defToken = "T000/B111/dbOpsXXXXsecret", "T000/B222/defaultXXXXsecret"
	cfg := Config{Slack: &SlackConfig{
		Webhook:  secretFile(t, slackAPI.URL+"/services/"+defToken),
		Channels: map[string]secret.Source{"#db-ops": secretFile(t, slackAPI.URL+"/services/"+dbToken)},
	}}
	r := start(t, cfg, t.TempDir())
	ev := event("mysql-replication-delay", "#db-ops", "slack:#db-ops", "slack:#general")
	if n, err := r.Notify(ev); err != nil || n != 2 {
		t.Fatalf("Notify = %d, %v; want 2 (#db-ops and slack:#db-ops are one target)", n, err)
	}
	waitUntil(t, 5*time.Second, "2 slack posts", func() bool { return len(slackAPI.requests()) == 2 })
	if n, err := r.Notify(ev); err != nil || n != 0 {
		t.Fatalf("repeated Notify = %d, %v; want 0", n, err)
	}
	if _, err := r.Notify(resolved(ev)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "4 slack posts", func() bool { return len(slackAPI.requests()) == 4 })
	time.Sleep(100 * time.Millisecond) // nothing more may come
	reqs := slackAPI.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d posts, want 4", len(reqs))
	}
	byChannel := map[string][]string{}
	for _, req := range reqs {
		var p struct{ Channel, Text string }
		decodeJSON(t, req.Body, &p)
		if req.Header.Get("Content-Type") != "application/json" || req.Method != http.MethodPost {
			t.Errorf("%s %s with Content-Type %q", req.Method, req.Path, req.Header.Get("Content-Type"))
		}
		wantPath := "/services/" + defToken
		if p.Channel == "#db-ops" {
			wantPath = "/services/" + dbToken
		}
		if req.Path != wantPath {
			t.Errorf("channel %s posted to %s, want its webhook %s", p.Channel, req.Path, wantPath)
		}
		byChannel[p.Channel] = append(byChannel[p.Channel], p.Text)
	}
	for _, ch := range []string{"#db-ops", "#general"} {
		texts := byChannel[ch]
		if len(texts) != 2 || !strings.Contains(texts[0], "[FIRING] mysql-replication-delay") || !strings.Contains(texts[1], "[RESOLVED]") {
			t.Errorf("%s got %q, want one firing then one resolved", ch, texts)
		}
	}
	noSecrets(t, r, dbToken, defToken)
}

// TestSlackRefusal: Slack's answer to a bad channel is a 404 with a text
// body; the message is set aside in failed/ instead of retried forever.
func TestSlackRefusal(t *testing.T) {
	slackAPI := newRecorder(t, func(request) (int, string) { return http.StatusNotFound, "channel_not_found" })
	r := start(t, Config{Slack: &SlackConfig{Webhook: secretFile(t, slackAPI.URL+"/services/T/B/x")}}, t.TempDir())
	if _, err := r.Notify(event("r", "slack:#gone")); err != nil {
		t.Fatal(err)
	}
	failed := filepath.Join(r.Outbox().Dir(), "failed")
	waitUntil(t, 5*time.Second, "the message in failed/", func() bool {
		ents, _ := os.ReadDir(failed)
		return len(ents) == 1
	})
	if n := len(slackAPI.requests()); n != 1 {
		t.Errorf("%d attempts for a permanent refusal, want 1", n)
	}
	if !strings.Contains(r.logs.String(), "channel_not_found") {
		t.Errorf("the log does not say why:\n%s", r.logs)
	}
}

// TestWebhookSignature: the receiver verifies the HMAC-SHA256 signature
// with the shared key (computed here independently, and with Verify); a
// receiver with another key refuses it.
func TestWebhookSignature(t *testing.T) {
	const key = "whsec-0123456789abcdef"
	verify := func(k string) func(request) (int, string) {
		return func(req request) (int, string) {
			ts := req.Header.Get(TimestampHeader)
			mac := hmac.New(sha256.New, []byte(k))
			mac.Write([]byte(ts + "." + string(req.Body)))
			if req.Header.Get(SignatureHeader) != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
				return http.StatusUnauthorized, "bad signature"
			}
			return http.StatusOK, `{"accepted":true}`
		}
	}
	good := newRecorder(t, verify(key))
	other := newRecorder(t, verify("another-key"))
	cfg := Config{
		Webhooks: map[string]WebhookConfig{
			"sms":   {URL: good.URL + "/hook", Secret: secretFile(t, key)},
			"other": {URL: other.URL + "/hook", Secret: secretFile(t, key)},
		},
		Aliases: map[string]string{"sms:": "webhook:sms"},
	}
	r := start(t, cfg, t.TempDir())
	if _, err := r.Notify(event("mysql-replication-delay", "sms:138****1234", "webhook:other")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "both webhooks called", func() bool { return len(good.requests()) == 1 && len(other.requests()) == 1 })
	req := good.requests()[0]
	var m Message
	decodeJSON(t, req.Body, &m)
	if m.Recipient != "sms:138****1234" || m.Target != "webhook:sms" || m.Kind != Firing || m.Rule != "mysql-replication-delay" || m.Value != 75 {
		t.Errorf("webhook body = %+v", m)
	}
	if req.Header.Get(EventHeader) != "firing" {
		t.Errorf("%s = %q", EventHeader, req.Header.Get(EventHeader))
	}
	if err := Verify([]byte(key), req.Header.Get(TimestampHeader), req.Header.Get(SignatureHeader), req.Body, time.Now(), time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := Verify([]byte("another-key"), req.Header.Get(TimestampHeader), req.Header.Get(SignatureHeader), req.Body, time.Now(), time.Minute); err == nil {
		t.Error("Verify accepted the wrong key")
	}
	if err := Verify([]byte(key), req.Header.Get(TimestampHeader), req.Header.Get(SignatureHeader), req.Body, time.Now().Add(time.Hour), time.Minute); err == nil {
		t.Error("Verify accepted an hour-old timestamp")
	}
	tampered := append([]byte(nil), req.Body...)
	tampered[len(tampered)-2] ^= 1
	if err := Verify([]byte(key), req.Header.Get(TimestampHeader), req.Header.Get(SignatureHeader), tampered, time.Now(), time.Minute); err == nil {
		t.Error("Verify accepted a tampered body")
	}
	// The receiver with another key answered 401: refused for good.
	waitUntil(t, 5*time.Second, "the refused message in failed/", func() bool {
		ents, _ := os.ReadDir(filepath.Join(r.Outbox().Dir(), "failed"))
		return len(ents) == 1
	})
	noSecrets(t, r, key)
}

// jiraServer follows Jira's REST API v2 for create issue and add
// comment: it checks the auth header and the JSON shapes, and answers 201
// with the documented bodies.
type jiraServer struct {
	*recorder
	issues map[string]string // key -> summary
}

func newJiraServer(t *testing.T, wantAuth string) *jiraServer {
	j := &jiraServer{issues: map[string]string{}}
	j.recorder = newRecorder(t, func(req request) (int, string) {
		if req.Header.Get("Authorization") != wantAuth {
			return http.StatusUnauthorized, `{"errorMessages":["You are not authenticated."],"errors":{}}`
		}
		switch {
		case req.Method == http.MethodPost && req.Path == "/rest/api/2/issue":
			var in struct {
				Fields struct {
					Project     struct{ Key string }
					Summary     string
					Description string
					Issuetype   struct{ Name string }
					Labels      []string
				}
			}
			decodeJSON(t, req.Body, &in)
			f := in.Fields
			if f.Project.Key == "" || f.Summary == "" || f.Issuetype.Name == "" {
				return http.StatusBadRequest, `{"errorMessages":[],"errors":{"summary":"You must specify a summary of the issue."}}`
			}
			key := f.Project.Key + "-" + string(rune('1'+len(j.issues)))
			j.issues[key] = f.Summary
			return http.StatusCreated, `{"id":"10000","key":"` + key + `","self":"` + j.URL + `/rest/api/2/issue/10000"}`
		case req.Method == http.MethodPost && strings.HasPrefix(req.Path, "/rest/api/2/issue/") && strings.HasSuffix(req.Path, "/comment"):
			key := strings.TrimSuffix(strings.TrimPrefix(req.Path, "/rest/api/2/issue/"), "/comment")
			if _, ok := j.issues[key]; !ok {
				return http.StatusNotFound, `{"errorMessages":["Issue does not exist or you do not have permission to see it."],"errors":{}}`
			}
			var in struct{ Body string }
			decodeJSON(t, req.Body, &in)
			if in.Body == "" {
				return http.StatusBadRequest, `{"errorMessages":[],"errors":{"comment":"Comment body can not be empty!"}}`
			}
			return http.StatusCreated, `{"id":"10100","body":"` + "ok" + `"}`
		}
		return http.StatusNotFound, "{}"
	})
	return j
}

// TestJira: a firing episode opens one issue in the project, its
// resolution comments on that issue (the key kept in the outbox's refs),
// with bearer auth (Data Center) or basic auth (Cloud).
func TestJira(t *testing.T) {
	const token = "jira-pat-XYZ123secret"
	for _, tt := range []struct {
		name, user, auth string
	}{
		{"bearer", "", "Bearer " + token},
		{"basic", "bot@example.org", "Basic " + base64.StdEncoding.EncodeToString([]byte("bot@example.org:"+token))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			deliveries := make(chan Delivery, 2)
			js := newJiraServer(t, tt.auth)
			cfg := Config{Jira: &JiraConfig{URL: js.URL, User: tt.user, Token: secretFile(t, token)}}
			r := startWith(t, cfg, t.TempDir(), func(n *Notifier) {
				n.OnDelivery(func(d Delivery) { deliveries <- d })
			})
			ev := event("mysql-replication-delay", "jira:OPS")
			ev.Details = "score history: 82 64 58 51\ndiagnosis: go.version-skew fail"
			ev.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
			if _, err := r.Notify(ev); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Notify(resolved(ev)); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, 5*time.Second, "issue and comment", func() bool { return len(js.requests()) >= 2 })
			reqs := js.requests()
			if len(reqs) != 2 || reqs[0].Path != "/rest/api/2/issue" || reqs[1].Path != "/rest/api/2/issue/OPS-1/comment" {
				for _, r := range reqs {
					t.Logf("%s %s: %s", r.Method, r.Path, r.Body)
				}
				t.Fatalf("want create issue, then comment on OPS-1")
			}
			var issue struct {
				Fields struct {
					Project     struct{ Key string }
					Description string
					Issuetype   struct{ Name string }
					Labels      []string
				}
			}
			decodeJSON(t, reqs[0].Body, &issue)
			f := issue.Fields
			if f.Project.Key != "OPS" || f.Issuetype.Name != "Task" || !strings.Contains(f.Description, ev.TraceID) ||
				!strings.Contains(f.Description, "diagnosis: go.version-skew fail") || len(f.Labels) == 0 {
				t.Errorf("issue = %s", reqs[0].Body)
			}
			var comment struct{ Body string }
			decodeJSON(t, reqs[1].Body, &comment)
			if !strings.Contains(comment.Body, "[RESOLVED]") {
				t.Errorf("comment = %q", comment.Body)
			}
			for _, kind := range []Kind{Firing, Resolved} {
				d := <-deliveries
				if d.Message.Kind != kind || d.Ref != "OPS-1" || d.Err != nil || d.Message.Target != "jira:OPS" {
					t.Errorf("delivery report = %+v, want %s with ref OPS-1", d, kind)
				}
			}
			noSecrets(t, r, token)
		})
	}
}

func TestResolve(t *testing.T) {
	cfg := Config{
		Alertmanager: &AlertmanagerConfig{URL: "http://127.0.0.1:9093"},
		Slack:        &SlackConfig{Channels: map[string]secret.Source{"#db-ops": {Env: "X"}}},
		Webhooks:     map[string]WebhookConfig{"sms": {URL: "http://127.0.0.1:1"}},
		Jira:         &JiraConfig{URL: "http://127.0.0.1:2"},
		Aliases:      map[string]string{"sms:": "webhook:sms", "oncall": "jira:OPS", "#dba": "slack:#db-ops"},
	}
	for _, tt := range []struct{ entry, want, err string }{
		{"alertmanager", "alertmanager", ""},
		{"#db-ops", "slack:#db-ops", ""},
		{"#dba", "slack:#db-ops", ""},
		{"slack:#db-ops", "slack:#db-ops", ""},
		{"sms:138****1234", "webhook:sms", ""},
		{"oncall", "jira:OPS", ""},
		{"jira:INFRA", "jira:INFRA", ""},
		{"webhook:sms", "webhook:sms", ""},
		{"#general", "", "no webhook for #general"},
		{"webhook:pager", "", `no webhook "pager"`},
		{"pagerduty:x", "", "unknown notify target"},
		{"slack:db-ops", "", "slack:#channel"},
	} {
		got, err := cfg.Resolve(tt.entry)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Resolve(%q) = %q, %v; want error %q", tt.entry, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tt.entry, got, err, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Setenv("NOTIFY_TEST_TOKEN", "tok-secret-value")
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"ok", Config{Jira: &JiraConfig{URL: "https://jira.example.org", Token: secret.Source{Env: "NOTIFY_TEST_TOKEN"}}}, ""},
		{"bad am url", Config{Alertmanager: &AlertmanagerConfig{URL: "alertmanager:9093"}}, "notify.alertmanager.url"},
		{"creds in url", Config{Alertmanager: &AlertmanagerConfig{URL: "http://u:p@am:9093"}}, "credentials in the URL"},
		{"missing token", Config{Jira: &JiraConfig{URL: "https://jira.example.org", Token: secret.Source{Env: "NOTIFY_TEST_UNSET"}}}, "notify.jira.token"},
		{"webhook no secret", Config{Webhooks: map[string]WebhookConfig{"x": {URL: "http://h/"}}}, "notify.webhooks.x.secret"},
		{"slack empty", Config{Slack: &SlackConfig{}}, "notify.slack"},
		{"bad alias", Config{Aliases: map[string]string{"#a": "webhook:none"}}, "notify.aliases.#a"},
	} {
		err := tt.cfg.Validate()
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "tok-secret-value") {
			t.Errorf("%s: error quotes a secret: %v", tt.name, err)
		}
	}
}
