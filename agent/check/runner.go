package check

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// Default per-check timeouts. Fast checks must stay well inside the
// doctor's half-second budget; these are only the point where a hung check
// is given up.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultSlowTimeout = 3 * time.Minute
	// ColdCacheTimeout is the least timeout of every check while the
	// build cache is cold (Toolchain.ColdCache).
	ColdCacheTimeout = 3 * time.Minute
)

// Runner runs checks concurrently.
type Runner struct {
	// Timeout is the timeout of every check (--timeout), its own
	// included; when zero, each check gets its own Timeout, else
	// DefaultTimeout (DefaultSlowTimeout for slow checks). Validate
	// rejects a negative one.
	Timeout time.Duration
	// Grace is how long a check that ignores its cancelled context gets
	// before the runner gives up on it (1s when zero).
	Grace time.Duration
	// Progress, when set, hears each check start (done false) and end
	// (done true), one call at a time: a terminal shows what still runs
	// while slow work (a cold build) goes on.
	Progress func(id string, done bool)
	// Stall is how long a FillsCache check past its timeout may go
	// without writing to the build cache (DefaultStall when zero).
	Stall time.Duration
	// Proofs, when set, keeps the passes of the checks that prove the
	// toolchain by running it (Check.Proves) and lets them stand while
	// their inputs are unchanged; nil proves everything on every run
	// (--fresh, a rerun after a fix).
	Proofs *Proofs
	// Log hears what the runner could not do that costs only speed (a
	// proof that could not be kept); slog.Default when nil.
	Log *slog.Logger
}

// Validate reports a runner setting that cannot work, naming the value.
func (r Runner) Validate() error {
	if r.Timeout < 0 {
		return fmt.Errorf("--timeout %s: a timeout cannot be negative; give a positive duration such as 30s, or 0 for each check's default", r.Timeout)
	}
	if r.Grace < 0 {
		return fmt.Errorf("grace %s: cannot be negative", r.Grace)
	}
	return nil
}

// Run runs the checks and returns their results in the order given. A check
// that panics or overruns its timeout yields status error; the others are
// not affected.
func (r Runner) Run(ctx context.Context, env *Env, checks []Check) []Result {
	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	var mu sync.Mutex
	progress := func(id string, done bool) {
		if r.Progress != nil {
			mu.Lock()
			defer mu.Unlock()
			r.Progress(id, done)
		}
	}
	// The fingerprint is taken once, by the first proving check that
	// needs it, and only if one runs.
	fingerprint := sync.OnceValue(func() inputs { return r.Proofs.inputs(env) })
	for i, c := range checks {
		wg.Go(func() {
			progress(c.ID, false)
			results[i] = r.runProving(ctx, env, c, fingerprint)
			progress(c.ID, true)
		})
	}
	wg.Wait()
	return Attribute(results)
}

// runProving runs c, or lets its kept proof stand (Runner.Proofs).
func (r Runner) runProving(ctx context.Context, env *Env, c Check, fingerprint func() inputs) Result {
	if r.Proofs == nil || !c.Proves || env.Toolchain == nil || env.Toolchain.Err != nil {
		return r.runOne(ctx, env, c)
	}
	start := time.Now()
	in := fingerprint()
	if res, ok := r.Proofs.lookup(c.ID, in); ok {
		res.ID, res.Title, res.Source = c.ID, c.Title, c.Source
		res.Duration = time.Since(start)
		return res
	}
	res := r.runOne(ctx, env, c)
	// A pass on a cold cache is kept as well: it proved the same thing.
	if err := r.Proofs.keep(c.ID, in, res); err != nil {
		log := r.Log
		if log == nil {
			log = slog.Default()
		}
		log.Debug("proof not kept; the next run proves again", "check", c.ID, "err", err)
	}
	return res
}

func (r Runner) runOne(ctx context.Context, env *Env, c Check) Result {
	start := time.Now()
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = c.Timeout
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
		if c.Slow {
			timeout = DefaultSlowTimeout
		}
	}
	// A cold build cache is not a hang: the first build on a new machine
	// compiles the standard library (45 s for hello world on two busy
	// cores). Unless --timeout was given, a check gets the slow checks'
	// budget then, and its result says why.
	base, cold := timeout, false
	if r.Timeout <= 0 && env.Toolchain != nil && env.Toolchain.ColdCache && timeout < ColdCacheTimeout {
		timeout, cold = ColdCacheTimeout, true
	}
	grace := r.Grace
	if grace == 0 {
		grace = time.Second
	}

	var res Result
	var fill *fillWatch
	if env.Toolchain != nil && env.Toolchain.Err != nil && !c.NoToolchain {
		res = Skipf("no working Go toolchain, see go.binary").With("error", env.Toolchain.Err.Error())
	} else {
		var cctx context.Context
		var cancel context.CancelFunc
		cctx, cancel, fill = r.watchFill(ctx, env, c, base)
		if fill != nil {
			// The watch bends the deadline and says why it took longer.
			timeout, cold = max(base, FillLimit), false
		} else {
			cctx, cancel = context.WithTimeout(ctx, timeout)
		}
		done := make(chan Result, 1)
		go func() {
			defer func() {
				if p := recover(); p != nil {
					done <- Errorf("check panicked: %v", p).With("stack", panicSite(debug.Stack()))
				}
			}()
			done <- c.Run(cctx, env)
		}()
		select {
		case res = <-done:
		case <-cctx.Done():
			select {
			case res = <-done:
			case <-time.After(grace):
				res = Errorf("did not finish within %s and ignored cancellation", timeout)
			}
		}
		// A result produced after the deadline or an interrupt is built on
		// killed commands: do not trust it.
		if err := cctx.Err(); err != nil && res.Status != Error {
			why := fmt.Sprintf("did not finish within %s", timeout)
			if !errors.Is(err, context.DeadlineExceeded) {
				why = "interrupted"
			}
			res = Errorf("%s", why).With("partial", res.Summary)
		}
		cancel()
	}
	res.ID, res.Title, res.Source = c.ID, c.Title, c.Source
	res.Duration = time.Since(start)
	if fill != nil {
		took := res.Duration
		res = fill.annotate(res, took)
		res.ID, res.Title, res.Source, res.Duration = c.ID, c.Title, c.Source, took
	}
	if cold && res.Duration > base {
		res = res.With("cold cache", fmt.Sprintf("took %s, over the usual %s: the build cache %s had never finished a build, so the timeout was %s", res.Duration.Round(time.Millisecond), base, env.Toolchain.Get("GOCACHE"), timeout))
	}
	if res.Status == "" {
		res.Status = Error
		res.Summary = "check returned no status (a bug in gopatrol)"
	}
	return res
}

// panicSite keeps the frame that panicked, not the runtime's own frames.
func panicSite(stack []byte) string {
	lines := strings.Split(string(stack), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") && i+3 < len(lines) {
			return strings.TrimSpace(lines[i+2]) + " " + strings.TrimSpace(lines[i+3])
		}
	}
	return ""
}

// Select picks checks by ID. only and skip name check IDs; an unknown ID is
// an error that names it. Slow checks are included with slow, or when
// named in only.
func Select(all []Check, only, skip []string, slow bool) ([]Check, error) {
	known := map[string]bool{}
	for _, c := range all {
		known[c.ID] = true
	}
	for _, id := range slices.Concat(only, skip) {
		if !known[id] {
			return nil, fmt.Errorf("unknown check ID %q (gopatrol check --list shows them)", id)
		}
	}
	var out []Check
	for _, c := range all {
		switch {
		case slices.Contains(skip, c.ID):
		case len(only) > 0:
			if slices.Contains(only, c.ID) {
				out = append(out, c)
			}
		case c.Slow && !slow:
		default:
			out = append(out, c)
		}
	}
	return out, nil
}
