package agent

import (
	"context"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// firstPatrol is the first default patrol's checks, started as soon as
// the plan is resolved: /readyz waits for the first patrol (issue 11's
// "ready"), and running its checks beside the probe detection and the
// sensors' attachment, rather than after them, takes the longer of the
// three from start to ready instead of their sum. The scheduler's first
// default slot records these results instead of running the checks
// again.
type firstPatrol struct {
	cancel  context.CancelFunc
	done    chan struct{}
	start   time.Time
	results []check.Result
}

// startFirstPatrol runs the default set in the background, on its own
// context: stopAgent's grace applies to it as to any patrol (takeFirst).
func (a *agent) startFirstPatrol(ctx context.Context) {
	cfg := a.cfg.Load()
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &firstPatrol{cancel: cancel, done: make(chan struct{}), start: time.Now()}
	env := &check.Env{Target: a.plan.target, Toolchain: a.plan.toolchain}
	checks := a.checks(SetDefault, cfg)
	go func() {
		defer close(f.done)
		f.results = a.runner(cfg).Run(ctx, env, checks)
	}()
	a.mu.Lock()
	a.first = f
	a.mu.Unlock()
}

// takeFirst returns the first patrol's results for a default patrol, once
// (nil for any other, or when there is none): it waits for them, and a
// cancelled ctx (the grace period ended) cancels the checks.
func (a *agent) takeFirst(ctx context.Context, set CheckSet) ([]check.Result, time.Time) {
	if set != SetDefault {
		return nil, time.Time{}
	}
	a.mu.Lock()
	f := a.first
	a.first = nil
	a.mu.Unlock()
	if f == nil {
		return nil, time.Time{}
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		f.cancel()
		<-f.done
	}
	f.cancel()
	return f.results, f.start
}

// dropFirst cancels a first patrol that no slot took (a start that
// failed after it began) and waits for its checks to end.
func (a *agent) dropFirst() {
	a.mu.Lock()
	f := a.first
	a.first = nil
	a.mu.Unlock()
	if f != nil {
		f.cancel()
		<-f.done
	}
}
