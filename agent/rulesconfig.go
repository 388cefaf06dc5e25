package agent

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/gopatrol/gopatrol/agent/notify"
	"github.com/gopatrol/gopatrol/agent/patrol/query"
)

// RulesConfig turns the patrol rule engine (agent/patrol, docs/rules.md)
// on and shapes its episodes and escalation. An empty Dir runs no rules.
type RulesConfig struct {
	// Dir holds the rule files (*.yaml), re-read on SIGHUP.
	Dir string `yaml:"dir"`
	// AllowExec lets exec rules run commands; without it a rule set with
	// one is refused.
	AllowExec bool `yaml:"allow_exec"`
	// Tick is how often the engine looks for due rules; a rule's own
	// every or at decides when it runs, so Tick bounds their precision.
	Tick time.Duration `yaml:"tick"`
	// ResolveAfter consecutive healthy evaluations end a breach episode.
	ResolveAfter int `yaml:"resolve_after"`
	// A group escalates when its score stays under EscalateBelow for
	// EscalateAfter consecutive evaluations: the full doctor runs as a
	// diagnosis and a ticket opens at each of Tickets.
	EscalateBelow float64 `yaml:"escalate_below"`
	EscalateAfter int     `yaml:"escalate_after"`
	// Tickets are notify entries (jira:PROJECT, webhook:NAME or an alias)
	// that receive escalation tickets.
	Tickets []string `yaml:"tickets"`
	// SilenceCanary creates an Alertmanager silence for each firing
	// canary alert, so that a canary rule pages nobody.
	SilenceCanary bool `yaml:"silence_canary"`
}

// defaultRules is the rules block with every key at its default.
func defaultRules() RulesConfig {
	return RulesConfig{Tick: 10 * time.Second, ResolveAfter: 3, EscalateBelow: 70, EscalateAfter: 3}
}

// validateRules checks the rules, notify and sources blocks. Notify and
// sources read their secrets (never keeping them) so that a token file
// that is missing fails the start, not the first page.
func (c Config) validateRules() error {
	bad := func(key, format string, a ...any) error {
		return &ConfigError{File: c.File, Key: key, Msg: fmt.Sprintf(format, a...)}
	}
	r := c.Rules
	if r.Dir != "" && !filepath.IsAbs(r.Dir) {
		return bad("rules.dir", "%q: want an absolute path, or \"\" for no rules", r.Dir)
	}
	if r.Tick < 100*time.Millisecond || r.Tick > time.Hour {
		return bad("rules.tick", "%v: want a duration from 100ms to 1h", r.Tick)
	}
	if r.ResolveAfter < 1 || r.ResolveAfter > 1000 {
		return bad("rules.resolve_after", "%d: want from 1 to 1000 healthy evaluations", r.ResolveAfter)
	}
	if r.EscalateBelow <= 0 || r.EscalateBelow > 100 {
		return bad("rules.escalate_below", "%v: want a score above 0 and at most 100", r.EscalateBelow)
	}
	if r.EscalateAfter < 1 || r.EscalateAfter > 1000 {
		return bad("rules.escalate_after", "%d: want from 1 to 1000 evaluations", r.EscalateAfter)
	}
	if err := c.Notify.Validate(); err != nil {
		return splitKey(c.File, "notify", err)
	}
	for _, t := range r.Tickets {
		if _, err := c.Notify.Resolve(t); err != nil {
			return bad("rules.tickets", "%v", err)
		}
	}
	if r.SilenceCanary && c.Notify.Alertmanager == nil {
		return bad("rules.silence_canary", "true needs notify.alertmanager.url")
	}
	reg, err := query.NewRegistry(c.Sources)
	if err != nil {
		return splitKey(c.File, "sources", err)
	}
	reg.Close()
	return nil
}

// splitKey turns "key.sub: what" (the first of a joined error, as notify
// and query write them) into a ConfigError naming prefix.key.sub.
func splitKey(file, prefix string, err error) error {
	first, _, _ := strings.Cut(err.Error(), "\n")
	key, msg, ok := strings.Cut(first, ": ")
	if !ok || strings.ContainsAny(key, " \"") {
		return &ConfigError{File: file, Key: prefix, Msg: err.Error()}
	}
	if !strings.HasPrefix(key, prefix+".") {
		key = prefix + "." + key
	}
	return &ConfigError{File: file, Key: key, Msg: msg}
}

// notifyConfig and sources are typed here so config.go needs only its
// three fields.
type (
	notifyConfig = notify.Config
	sources      = query.Servers
)
