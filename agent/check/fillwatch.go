package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultStall is how long a FillsCache check past its usual timeout may
// go without writing to the build cache before it is taken for a hang.
// The go command writes an entry as each package's compile ends; the
// runtime's, the longest, takes about ten seconds on two busy cores and
// more under heavy load, with nothing else to compile meanwhile.
const DefaultStall = 30 * time.Second

// FillLimit bounds a FillsCache check that keeps working: a release's
// whole standard library, compiled on two cores under a load average of
// 40, takes longer than ColdCacheTimeout. Since a hang is caught by the
// stall, not by this bound, it can be generous.
const FillLimit = 10 * time.Minute

// fillWatch is the deadline of a FillsCache check: its usual timeout
// (base), extended for as long as its builds visibly work, up to
// FillLimit. A release's first build in a cache (the cache cold for
// that release, though another release may have warmed it: the cache's
// keys hold the toolchain's version) compiles the standard library: the
// compilers burn CPU and each package's end writes a cache entry. A hung
// go command does neither. Two signals, polled once a second once the
// check is past base: a write to the cache (the mtime of one of its 256
// subdirectories), and CPU time spent by this process's children and
// their descendants (a link writes to the cache only at its end). Both
// are process-wide, not the check's own: another check building at the
// same time, or another build writing to the same cache, extends a hung
// check too, which FillLimit still bounds.
type fillWatch struct {
	cache    string // GOCACHE as the agent reaches it (Target.Path)
	gocache  string // GOCACHE as the target names it, for messages
	base     time.Duration
	stall    time.Duration
	start    time.Time
	extended atomic.Bool
	stalled  atomic.Bool
	// lastCPU and lastBusy are the descendants' CPU at the last poll and
	// when it last grew.
	lastCPU  int64
	lastBusy time.Time
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
	cctx, cancel := context.WithTimeout(ctx, max(base, FillLimit))
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
	w.lastBusy = w.start
	for {
		if cpu := descendantsCPU(); cpu > w.lastCPU {
			w.lastCPU, w.lastBusy = cpu, time.Now()
		}
		last := w.lastWrite()
		if w.lastBusy.After(last) {
			last = w.lastBusy
		}
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

// descendantsCPU is the CPU time, in clock ticks, of this process's
// descendants: each one's own and that of its children it has waited for
// (a go command's finished compiles). Processes that end between two
// reads are lost, so it can shrink; only growth counts.
func descendantsCPU() int64 {
	var sum int64
	seen := map[string]bool{}
	var walk func(pid string, depth int)
	walk = func(pid string, depth int) {
		if depth > 8 {
			return
		}
		tasks, _ := filepath.Glob("/proc/" + pid + "/task/*/children")
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			for _, child := range strings.Fields(string(b)) {
				if seen[child] {
					continue
				}
				seen[child] = true
				sum += procCPU(child)
				walk(child, depth+1)
			}
		}
	}
	walk(strconv.Itoa(os.Getpid()), 0)
	return sum
}

// procCPU is utime+stime+cutime+cstime of /proc/pid/stat, in ticks.
func procCPU(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis (state is field 3, utime 14).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	var sum int64
	for _, k := range []int{11, 12, 13, 14} {
		if k < len(f) {
			n, _ := strconv.ParseInt(f[k], 10, 64)
			sum += n
		}
	}
	return sum
}

// annotate says how the watch bent the check's deadline, if it did.
func (w *fillWatch) annotate(res Result, took time.Duration) Result {
	switch {
	case w.stalled.Load():
		return Errorf("did not finish within %s, and its builds were neither filling the build cache %s nor using CPU in the last %s: a hang, not a cold cache", w.base, w.gocache, w.stall).
			With("partial", res.Summary)
	case w.extended.Load() && took > w.base:
		return res.With("cold cache", fmt.Sprintf("took %s, over the usual %s: its go commands were compiling into the build cache %s (a release's first build there compiles the standard library), so the timeout was extended while they worked, up to %s",
			took.Round(time.Millisecond), w.base, w.gocache, max(w.base, FillLimit)))
	}
	return res
}
