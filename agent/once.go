package agent

import (
	"context"
	"time"
)

// onceRules is --once's rule patrol: one evaluation of the rules due now
// (on a fresh state directory, all of them), the escalations it decides,
// and the delivery of what they queued, bounded by shutdown_timeout;
// what is not delivered by then stays in the outbox for the next run.
func (a *agent) onceRules(ctx context.Context) error {
	if err := a.loadRules(ctx); err != nil || a.rules == nil {
		return err
	}
	r := a.rules
	defer r.reg.Close()
	a.rulesCycle(ctx, r)
	r.wg.Wait() // the escalations' diagnoses and tickets
	a.drainOutbox(ctx, r, a.plan.cfg.ShutdownTimeout)
	return nil
}

// drainOutbox runs the notifier until its outbox is empty or bound has
// passed.
func (a *agent) drainOutbox(ctx context.Context, r *ruleEngine, bound time.Duration) {
	dctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); r.notifier.Run(dctx) }()
	defer func() { cancel(); <-done }()
	for {
		pending, err := r.notifier.Outbox().Pending()
		if err != nil {
			a.log.Error("outbox unreadable", "err", err)
			return
		}
		if len(pending) == 0 {
			return
		}
		select {
		case <-dctx.Done():
			a.log.Warn("notifications left in the outbox for the next run", "pending", len(pending))
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// onceCollect is --once's cloud collection: every probe whose interval is
// not 0 is asked once (each call bounded by the plugin host's call
// timeout) and its points recorded before the export.
func (a *agent) onceCollect(ctx context.Context) {
	if a.plugins == nil || a.rec == nil {
		return
	}
	c := newCollector(a.plan.cfg.Collect, a.plugins, a.rec.Instruments().Cloud, a.clock, a.log.Warn)
	c.cycle(ctx, a.clock.Now())
}
