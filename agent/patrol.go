package agent

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// runner runs the patrols' checks: with the proofs kept in the state
// directory, so that a patrol proves the toolchain by running it once per
// checks.proof_ttl, or when something it depends on changed. A diagnosis
// for a ticket and a remedy's rerun prove afresh.
func (a *agent) runner(cfg *Config) check.Runner {
	r := check.Runner{Timeout: cfg.Checks.Timeout, Log: a.log}
	if cfg.Checks.ProofTTL > 0 {
		// The state directory of the start: state_dir takes effect at
		// the next one, like the audit log and outbox kept there.
		r.Proofs = &check.Proofs{Dir: filepath.Join(a.plan.cfg.StateDir, "proofs"), TTL: cfg.Checks.ProofTTL}
	}
	return r
}

// schedule is cfg's schedule with this node's splay.
func (a *agent) schedule(cfg Config) Schedule {
	return Schedule{Every: cfg.Checks.Every, FullAt: cfg.Checks.FullAt, Splay: Splay(a.hostID(), cfg.Checks.FullSplay)}
}

// hostID is the identity the splay hashes: the machine-id of the host
// root, else the host name.
func (a *agent) hostID() string {
	if b, err := os.ReadFile(a.plan.target.Path("/etc/machine-id")); err == nil && len(b) > 0 {
		return string(b)
	}
	h, _ := os.Hostname()
	return h
}

// patrol runs one check set and records it.
func (a *agent) patrol(ctx context.Context, set CheckSet) check.Report {
	cfg := a.cfg.Load()
	results, start := a.takeFirst(ctx, set)
	if results == nil {
		start = time.Now()
		env := &check.Env{Target: a.plan.target, Toolchain: a.plan.toolchain}
		results = a.runner(cfg).Run(ctx, env, a.checks(set, cfg))
	}
	rep := check.NewReport(a.plan.toolchain, results)
	a.rec.Report(context.WithoutCancel(ctx), rep)
	a.mu.Lock()
	a.lastReport, a.lastSet, a.lastRun = &rep, set, a.clock.Now()
	a.ready = true
	a.mu.Unlock()
	a.log.Info("patrol done", "set", string(set), "duration", time.Since(start).Round(time.Millisecond).String(),
		"pass", rep.Summary[check.Pass], "warn", rep.Summary[check.Warn], "fail", rep.Summary[check.Fail],
		"error", rep.Summary[check.Error], "skip", rep.Summary[check.Skip])
	return rep
}

// checks are the set's checks under the current config's skip list.
func (a *agent) checks(set CheckSet, cfg *Config) []check.Check {
	var out []check.Check
	for _, c := range a.plan.sets[set] {
		skip := false
		for _, id := range cfg.Checks.Skip {
			skip = skip || id == c.ID
		}
		if !skip {
			out = append(out, c)
		}
	}
	return out
}
