package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/patrol"
	"github.com/gopatrol/gopatrol/agent/remedy"
)

// RemediationConfig is the node's opt-in to rules that act when they fire
// (`remediate:` and `webhook:` in a rule, docs/remediation.md). A rule
// asks; the node must also allow it.
type RemediationConfig struct {
	// Enabled lets firing active rules apply their check's fix and call
	// their webhook. Off by default: a node repairs itself only when its
	// owner said so.
	Enabled bool `yaml:"enabled"`
	// MaxPerHour bounds the actions this node runs in any hour, across
	// all rules; the ones over it are audited as rate_limited.
	MaxPerHour int `yaml:"max_per_hour"`
	// Timeout bounds one action: a fix with its rerun, or a webhook POST.
	Timeout time.Duration `yaml:"timeout"`
}

// defaultRemediation is the remediation block at its defaults.
func defaultRemediation() RemediationConfig {
	return RemediationConfig{MaxPerHour: patrol.DefaultMaxPerHour, Timeout: patrol.DefaultActionTimeout}
}

func (c Config) validateRemediation() error {
	r := c.Remediation
	if r.MaxPerHour < 1 || r.MaxPerHour > 3600 {
		return &ConfigError{File: c.File, Key: "remediation.max_per_hour",
			Msg: fmt.Sprintf("%d: want from 1 to 3600 actions an hour (remediation.enabled: false turns them off)", r.MaxPerHour)}
	}
	if r.Timeout < time.Second || r.Timeout > time.Hour {
		return &ConfigError{File: c.File, Key: "remediation.timeout", Msg: fmt.Sprintf("%v: want a duration from 1s to 1h", r.Timeout)}
	}
	return nil
}

// FixFunc applies the fix of check id in env and reruns the check: the
// shape of `gopatrol check --fix`'s runner (agent/remedy.Fix), whose
// Outcome has patrol.Attempt's fields, so it converts with
// patrol.Attempt(outcome).
type FixFunc func(ctx context.Context, env *check.Env, id string, dryRun bool) (patrol.Attempt, error)

// defaultFix is the agent's fix runner: the same code as `gopatrol check
// --fix` (agent/remedy), so a rule repairs exactly what the doctor would.
var defaultFix FixFunc = func(ctx context.Context, env *check.Env, id string, dryRun bool) (patrol.Attempt, error) {
	o, err := remedy.Fix(ctx, env, id, dryRun)
	return patrol.Attempt(o), err
}

// remedier is patrol.Remedier over a FixFunc in the doctor's Env: the same
// node, user and environment the check rules judge.
type remedier struct {
	env *check.Env
	fix FixFunc
}

// Remediate applies fix for real (never a dry run: the rule's author and
// the node's owner both opted in) and returns what the fix runner saw.
func (r remedier) Remediate(ctx context.Context, rule patrol.Rule, fix string) (patrol.Attempt, error) {
	at, err := r.fix(ctx, r.env, fix, false)
	if err != nil {
		return at, fmt.Errorf("rule %s: fix of %s: %w", rule.Name, fix, err)
	}
	return at, nil
}

// remediation is the engine's side of the remediation block.
func remediation(cfg RemediationConfig, env *check.Env, fix FixFunc) patrol.RemediationConfig {
	rc := patrol.RemediationConfig{Enabled: cfg.Enabled, MaxPerHour: cfg.MaxPerHour, Timeout: cfg.Timeout}
	if fix != nil {
		rc.Remedier = remedier{env: env, fix: fix}
	}
	return rc
}
