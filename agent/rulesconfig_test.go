package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The rules, notify and sources blocks: a full config loads, and each bad
// value is a *ConfigError naming the file and the key.
func TestLoadRulesConfig(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOPATROL_TEST_DSN", "gopatrol:pw@tcp(127.0.0.1:3306)/db")
	full := `
rules:
  dir: /etc/gopatrol/rules
  allow_exec: true
  tick: 1s
  resolve_after: 5
  escalate_below: 60
  escalate_after: 4
  tickets: ["jira:OPS", "webhook:tickets"]
  silence_canary: true
notify:
  alertmanager: {url: "http://127.0.0.1:9093"}
  slack: {channels: {"#db-ops": {file: ` + token + `}}}
  webhooks:
    tickets: {url: "http://127.0.0.1:8080/hook", secret: {file: ` + token + `}}
  jira: {url: "http://127.0.0.1:8081", token: {file: ` + token + `}}
  aliases: {"sms:": "webhook:tickets"}
sources:
  prometheus: {main: {url: "http://127.0.0.1:9090"}}
  databases: {mysql-primary: {driver: mysql, dsn: {env: GOPATROL_TEST_DSN}}}
`
	cfg, err := Load(writeConfig(t, full), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Rules
	if r.Dir != "/etc/gopatrol/rules" || !r.AllowExec || r.Tick != time.Second || r.ResolveAfter != 5 || r.EscalateBelow != 60 ||
		r.EscalateAfter != 4 || len(r.Tickets) != 2 || !r.SilenceCanary || cfg.Notify.Jira == nil || len(cfg.Sources.Databases) != 1 {
		t.Errorf("got %+v %+v %+v", r, cfg.Notify, cfg.Sources)
	}
	if d := Default().Rules; d.Dir != "" || d.Tick != 10*time.Second || d.ResolveAfter != 3 || d.EscalateBelow != 70 || d.EscalateAfter != 3 {
		t.Errorf("defaults %+v", d)
	}

	tests := []struct{ name, body, key, want string }{
		{"relative dir", "rules: {dir: rules}\n", "rules.dir", "absolute"},
		{"tick too short", "rules: {tick: 1ms}\n", "rules.tick", "100ms"},
		{"resolve_after zero", "rules: {resolve_after: 0}\n", "rules.resolve_after", "from 1"},
		{"escalate_below above 100", "rules: {escalate_below: 120}\n", "rules.escalate_below", "at most 100"},
		{"escalate_after zero", "rules: {escalate_after: 0}\n", "rules.escalate_after", "from 1"},
		{"ticket target not configured", "rules: {tickets: [\"jira:OPS\"]}\n", "rules.tickets", "no jira configured"},
		{"silence without alertmanager", "rules: {silence_canary: true}\n", "rules.silence_canary", "notify.alertmanager.url"},
		{"jira token file missing", "notify: {jira: {url: \"http://127.0.0.1:1\", token: {file: /nonexistent/t}}}\n", "notify.jira.token", "/nonexistent/t"},
		{"webhook secret env unset", "notify: {webhooks: {x: {url: \"http://127.0.0.1:1\", secret: {env: GOPATROL_TEST_UNSET}}}}\n", "notify.webhooks.x.secret", "GOPATROL_TEST_UNSET"},
		{"alertmanager url with credentials", "notify: {alertmanager: {url: \"http://u:p@127.0.0.1:1\"}}\n", "notify.alertmanager.url", "credentials"},
		{"unknown notify key", "notify: {pager: {}}\n", "notify.pager", "unknown key"},
		{"database driver", "sources: {databases: {x: {driver: oracle, dsn: {env: GOPATROL_TEST_DSN}}}}\n", "sources.databases.x", "oracle"},
		{"dsn env unset", "sources: {databases: {x: {driver: mysql, dsn: {env: GOPATROL_TEST_UNSET}}}}\n", "sources.databases.x", "GOPATROL_TEST_UNSET"},
		{"prometheus url", "sources: {prometheus: {p: {url: \"not a url\"}}}\n", "sources.prometheus.p", "not a url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.body)
			_, err := Load(p, nil)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v: want *ConfigError", err, err)
			}
			if ce.Key != tt.key || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %q (key %q): want key %q, %q and the file named", err, ce.Key, tt.key, tt.want)
			}
			if strings.Contains(err.Error(), "pw@") || strings.Contains(err.Error(), "t0ken") {
				t.Errorf("a secret in the error: %v", err)
			}
		})
	}
}
