package notify

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gopatrol/gopatrol/agent/internal/secret"
)

// Config is the notify section of the agent's configuration. Every secret
// is a secret.Source (a file or an environment variable), never a value.
type Config struct {
	Alertmanager *AlertmanagerConfig      `yaml:"alertmanager,omitempty" json:"alertmanager,omitempty"`
	Slack        *SlackConfig             `yaml:"slack,omitempty" json:"slack,omitempty"`
	Webhooks     map[string]WebhookConfig `yaml:"webhooks,omitempty" json:"webhooks,omitempty"`
	Jira         *JiraConfig              `yaml:"jira,omitempty" json:"jira,omitempty"`
	// Aliases map the notify entries rules are written with to targets.
	// A key is either a whole entry ("#db-ops": "slack:#db-ops") or a
	// scheme ending in a colon ("sms:": "webhook:sms"), which maps every
	// entry of that scheme; the entry itself is passed on as the
	// message's recipient. Without an alias, "#chan" means "slack:#chan".
	Aliases map[string]string `yaml:"aliases,omitempty" json:"aliases,omitempty"`
	Retry   RetryConfig       `yaml:"retry,omitempty" json:"retry,omitempty"`
}

// AlertmanagerConfig points at an Alertmanager's v2 API.
type AlertmanagerConfig struct {
	// URL is the base URL, e.g. http://alertmanager:9093.
	URL string `yaml:"url" json:"url"`
	// FiringTTL is the endsAt given to a firing alert: Alertmanager
	// resolves an alert that is not re-sent by then. One notification per
	// episode means no re-sends, so it is long (default 24h); the
	// resolving message ends the alert at once.
	FiringTTL time.Duration `yaml:"firing_ttl,omitempty" json:"firing_ttl,omitempty"`
}

// SlackConfig holds incoming-webhook URLs: they embed a token, so they are
// secrets. Channels overrides Webhook per channel ("#db-ops").
type SlackConfig struct {
	Webhook  secret.Source            `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	Channels map[string]secret.Source `yaml:"channels,omitempty" json:"channels,omitempty"`
}

// WebhookConfig is one generic webhook: a JSON POST signed with
// HMAC-SHA256 of the key in Secret.
type WebhookConfig struct {
	URL    string        `yaml:"url" json:"url"`
	Secret secret.Source `yaml:"secret" json:"secret"`
}

// JiraConfig is a Jira server or cloud site, REST API v2. With User set
// the token is sent as HTTP basic auth (Jira Cloud API tokens); without it
// as a bearer token (Jira Data Center personal access tokens).
type JiraConfig struct {
	URL       string        `yaml:"url" json:"url"`
	User      string        `yaml:"user,omitempty" json:"user,omitempty"`
	Token     secret.Source `yaml:"token" json:"token"`
	IssueType string        `yaml:"issue_type,omitempty" json:"issue_type,omitempty"`
}

// RetryConfig bounds delivery attempts: each call has CallTimeout; after a
// failure a target waits Initial, doubling up to Max, with jitter.
type RetryConfig struct {
	Initial     time.Duration `yaml:"initial,omitempty" json:"initial,omitempty"`
	Max         time.Duration `yaml:"max,omitempty" json:"max,omitempty"`
	CallTimeout time.Duration `yaml:"call_timeout,omitempty" json:"call_timeout,omitempty"`
	// Poll is how often the outbox is rescanned for work (default 5s).
	Poll time.Duration `yaml:"poll,omitempty" json:"poll,omitempty"`
}

func (r RetryConfig) withDefaults() RetryConfig {
	if r.Initial <= 0 {
		r.Initial = time.Second
	}
	if r.Max <= 0 {
		r.Max = 5 * time.Minute
	}
	if r.Max < r.Initial {
		r.Max = r.Initial
	}
	if r.CallTimeout <= 0 {
		r.CallTimeout = 10 * time.Second
	}
	if r.Poll <= 0 {
		r.Poll = 5 * time.Second
	}
	return r
}

// Validate checks the shape of the configuration and that every secret
// can be read, naming the key at fault. It reads secrets but keeps none.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, err error) { errs = append(errs, fmt.Errorf("notify.%s: %w", key, err)) }
	if c.Alertmanager != nil {
		if err := checkURL(c.Alertmanager.URL); err != nil {
			bad("alertmanager.url", err)
		}
	}
	if c.Slack != nil {
		if c.Slack.Webhook.IsZero() && len(c.Slack.Channels) == 0 {
			bad("slack", errors.New("set webhook or channels"))
		}
		if !c.Slack.Webhook.IsZero() {
			if _, err := c.Slack.Webhook.Load(); err != nil {
				bad("slack.webhook", err)
			}
		}
		for _, ch := range slices.Sorted(maps.Keys(c.Slack.Channels)) {
			if !strings.HasPrefix(ch, "#") {
				bad("slack.channels."+ch, errors.New("a channel starts with #"))
			}
			if _, err := c.Slack.Channels[ch].Load(); err != nil {
				bad("slack.channels."+ch, err)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Webhooks)) {
		w := c.Webhooks[name]
		if err := checkURL(w.URL); err != nil {
			bad("webhooks."+name+".url", err)
		}
		if _, err := w.Secret.Load(); err != nil {
			bad("webhooks."+name+".secret", err)
		}
	}
	if c.Jira != nil {
		if err := checkURL(c.Jira.URL); err != nil {
			bad("jira.url", err)
		}
		if _, err := c.Jira.Token.Load(); err != nil {
			bad("jira.token", err)
		}
	}
	for _, from := range slices.Sorted(maps.Keys(c.Aliases)) {
		to := c.Aliases[from]
		if _, err := c.canonical(to); err != nil {
			bad("aliases."+from, err)
		}
	}
	return errors.Join(errs...)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL with a host", s)
	}
	if u.User != nil {
		return errors.New("credentials in the URL: use the token or secret setting instead")
	}
	return nil
}

// Resolve maps one notify entry, as a rule writes it, to the canonical
// target that delivers it. Aliases come first (the whole entry, then its
// scheme), then "#chan" as "slack:#chan".
func (c *Config) Resolve(entry string) (string, error) {
	entry = strings.TrimSpace(entry)
	if to, ok := c.Aliases[entry]; ok {
		return c.canonical(to)
	}
	if i := strings.Index(entry, ":"); i > 0 {
		if to, ok := c.Aliases[entry[:i+1]]; ok {
			return c.canonical(to)
		}
	}
	if strings.HasPrefix(entry, "#") {
		return c.canonical("slack:" + entry)
	}
	return c.canonical(entry)
}

// canonical checks that target names a configured target.
func (c *Config) canonical(target string) (string, error) {
	scheme, arg, _ := strings.Cut(target, ":")
	switch scheme {
	case "alertmanager":
		if c.Alertmanager == nil {
			return "", fmt.Errorf("%q: no alertmanager configured (notify.alertmanager.url)", target)
		}
		return "alertmanager", nil
	case "slack":
		if !strings.HasPrefix(arg, "#") || len(arg) < 2 {
			return "", fmt.Errorf("%q: write slack:#channel", target)
		}
		if c.Slack == nil {
			return "", fmt.Errorf("%q: no slack configured (notify.slack)", target)
		}
		if _, ok := c.Slack.Channels[arg]; !ok && c.Slack.Webhook.IsZero() {
			return "", fmt.Errorf("%q: no webhook for %s in notify.slack.channels and no default notify.slack.webhook", target, arg)
		}
		return target, nil
	case "webhook":
		if _, ok := c.Webhooks[arg]; !ok {
			return "", fmt.Errorf("%q: no webhook %q in notify.webhooks", target, arg)
		}
		return target, nil
	case "jira":
		if arg == "" {
			return "", fmt.Errorf("%q: write jira:PROJECT", target)
		}
		if c.Jira == nil {
			return "", fmt.Errorf("%q: no jira configured (notify.jira)", target)
		}
		return target, nil
	}
	return "", fmt.Errorf("%q: unknown notify target: use alertmanager, slack:#channel, webhook:NAME, jira:PROJECT or an alias in notify.aliases", target)
}
