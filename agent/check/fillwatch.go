package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// DefaultStall is how long a FillsCache check past its usual timeout may
// go without writing to the build cache before it is taken for a hang.
// The go command writes an entry as each package's compile ends; the
// runtime's, the longest, takes about ten seconds on two busy cores and
// more under heavy load, with nothing else to compile meanwhile.
const DefaultStall = 30 * time.Second

// fillWatch is the deadline of a FillsCache check: its usual timeout
// (base), extended for as long as the build cache keeps being written,
// up to ColdCacheTimeout. A release's first build in a cache (the cache
// cold for that release, though another release may have warmed it: the
// cache's keys hold the toolchain's version) compiles the standard
// library and writes an entry per package; a hung go command writes
// nothing. Each write updates the mtime of one of the cache's 256
// subdirectories, so the watch stats those, once a second, only once the
// check is past base.
type fillWatch struct {
	cache    string // GOCACHE as the agent reaches it (Target.Path)
	gocache  string // GOCACHE as the target names it, for messages
	base     time.Duration
	stall    time.Duration
	start    time.Time
	extended atomic.Bool
	stalled  atomic.Bool
}

// watchFill returns the context of check c and its watch, or a nil watch
// when c's deadline is the plain timeout: c does not fill the cache,
// --timeout was given, or GOCACHE is off.
func (r Runner) watchFill(ctx context.Context, env *Env, c Check, base time.Duration) (context.Context, context.CancelFunc, *fillWatch) {
	tc := env.Toolchain
	if !c.FillsCache || r.Timeout > 0 || tc == nil || tc.Err != nil || !filepath.IsAbs(tc.Get("GOCACHE")) {
		return nil, nil, nil
	}
	w := &fillWatch{cache: env.Target.Path(tc.Get("GOCACHE")), gocache: tc.Get("GOCACHE"), base: base, stall: r.Stall, start: time.Now()}
	if w.stall <= 0 {
		w.stall = DefaultStall
	}
	cctx, cancel := context.WithTimeout(ctx, max(base, ColdCacheTimeout))
	go w.run(cctx, cancel)
	return cctx, cancel, w
}

func (w *fillWatch) run(ctx context.Context, cancel context.CancelFunc) {
	timer := time.NewTimer(w.base)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return
	case <-timer.C:
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		last := w.lastWrite()
		if !last.After(w.start) || time.Since(last) >= w.stall {
			w.stalled.Store(true)
			cancel()
			return
		}
		w.extended.Store(true)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// lastWrite is the newest mtime of the cache's directories.
func (w *fillWatch) lastWrite() time.Time {
	var last time.Time
	for i := range 256 {
		fi, err := os.Stat(filepath.Join(w.cache, fmt.Sprintf("%02x", i)))
		if err == nil && fi.ModTime().After(last) {
			last = fi.ModTime()
		}
	}
	return last
}

// annotate says how the watch bent the check's deadline, if it did.
func (w *fillWatch) annotate(res Result, took time.Duration) Result {
	switch {
	case w.stalled.Load():
		return Errorf("did not finish within %s, and its go commands were not filling the build cache %s (nothing written in the last %s): a hang, not a cold cache", w.base, w.gocache, w.stall).
			With("partial", res.Summary)
	case w.extended.Load() && took > w.base:
		return res.With("cold cache", fmt.Sprintf("took %s, over the usual %s: its go commands were filling the build cache %s (a release's first build there compiles the standard library), so the timeout was extended while they did, up to %s",
			took.Round(time.Millisecond), w.base, w.gocache, max(w.base, ColdCacheTimeout)))
	}
	return res
}
