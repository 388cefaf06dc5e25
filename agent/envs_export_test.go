package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/inventory"
)

// EnvRound is the agent's environment patrol without the daemon around
// it, for BenchmarkPatrol50Environments: environments are captured from
// live processes as the exec events would have them read, and Round is
// the agent's own round over them.
type EnvRound struct{ ep *envPatrol }

// NewEnvRound patrols with these checks, parallel at a time; every
// environment is due at every round.
func NewEnvRound(checks []check.Check, parallel int, timeout time.Duration) *EnvRound {
	return &EnvRound{ep: &envPatrol{
		cfg: EnvsConfig{Parallel: parallel, Every: time.Nanosecond}, inv: inventory.New(inventory.Config{}),
		checks: func() []check.Check { return checks }, timeout: func() time.Duration { return timeout },
		flush: make(chan struct{}, 1), wake: make(chan struct{}, 1), log: slog.New(slog.DiscardHandler),
	}}
}

// Capture records the environment of live process pid, run by uid.
func (r *EnvRound) Capture(pid int, uid uint32) error {
	env, err := r.ep.capture.Capture(pid, uid)
	if err != nil {
		return err
	}
	r.ep.inv.Observe(env, time.Now(), pid)
	return nil
}

// Round patrols every environment once.
func (r *EnvRound) Round(ctx context.Context) { r.ep.round(ctx) }

// Entries are the environments with their last patrols.
func (r *EnvRound) Entries() []inventory.Entry { return r.ep.inv.Entries() }
