package agent

import (
	"context"
	"fmt"
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

// NewEnvRound patrols with these checks, parallel at a time, at niceness
// nice and under SCHED_IDLE with idle; every environment is due at every
// round.
func NewEnvRound(checks []check.Check, parallel, nice int, idle bool, timeout time.Duration, proofs *check.Proofs) *EnvRound {
	return &EnvRound{ep: &envPatrol{
		cfg: EnvsConfig{Parallel: parallel, Nice: nice, Idle: idle, Every: time.Nanosecond}, inv: inventory.New(inventory.Config{}),
		checks: func() []check.Check { return checks }, runner: func() check.Runner { return check.Runner{Timeout: timeout, Proofs: proofs} },
		flush: make(chan struct{}, 1), wake: make(chan struct{}, 1), log: slog.New(slog.DiscardHandler),
	}}
}

// Capture records the environment of live process pid, run by uid, once
// its exec has completed (its environment has a PATH): a process just
// started can still show its parent's image for a moment, which the
// sensors' exec event never does.
func (r *EnvRound) Capture(pid int, uid uint32) error {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		env, err := r.ep.capture.Capture(pid, uid)
		if err != nil {
			return err
		}
		if env.Vars["PATH"] != "" {
			r.ep.inv.Observe(env, time.Now(), pid)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d: no PATH in its environment after 10 s", pid)
		}
	}
}

// Round patrols every environment once.
func (r *EnvRound) Round(ctx context.Context) { r.ep.round(ctx) }

// Entries are the environments with their last patrols.
func (r *EnvRound) Entries() []inventory.Entry { return r.ep.inv.Entries() }
