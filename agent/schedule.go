package agent

import (
	"context"
	"hash/fnv"
	"sync"
	"time"
)

// Clock is the scheduler's time: the real one, or a test's that advances
// on demand so that schedules are tested without sleeping.
type Clock interface {
	Now() time.Time
	// After delivers once d has passed on this clock.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// CheckSet names the two patrols.
type CheckSet string

const (
	SetDefault CheckSet = "default"
	SetFull    CheckSet = "full"
)

// Schedule says when each set runs.
type Schedule struct {
	Every time.Duration
	// FullAt is the full set's time of day ("HH:MM", node-local); empty
	// turns it off. Splay is this node's offset after it.
	FullAt string
	Splay  time.Duration
	Loc    *time.Location
}

// Splay is the node's offset in [0, max): a hash of the host identity, so a
// fleet's nodes spread their full patrols and a node keeps its slot across
// restarts.
func Splay(hostID string, max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(hostID))
	return time.Duration(h.Sum64() % uint64(max))
}

// NextFull is the first full-set slot strictly after now.
func (s Schedule) NextFull(now time.Time) (time.Time, bool) {
	if s.FullAt == "" {
		return time.Time{}, false
	}
	at, err := time.Parse("15:04", s.FullAt)
	if err != nil {
		return time.Time{}, false
	}
	loc := s.Loc
	if loc == nil {
		loc = time.Local
	}
	now = now.In(loc)
	for day := -1; day <= 1; day++ {
		d := now.AddDate(0, 0, day)
		slot := time.Date(d.Year(), d.Month(), d.Day(), at.Hour(), at.Minute(), 0, 0, loc).Add(s.Splay)
		if slot.After(now) {
			return slot, true
		}
	}
	return time.Time{}, false // unreachable: tomorrow's slot is after now
}

// Scheduler runs patrols on a Schedule. At most one patrol runs at a time:
// the full set includes the default one, so two at once would run a check
// twice. A default slot that finds a patrol running is skipped and counted;
// a full slot that does waits for it, once.
type Scheduler struct {
	clock Clock
	run   func(ctx context.Context, set CheckSet)
	// onSkip is told of every skipped slot (for the counter).
	onSkip func(set CheckSet)
	// beforeTick is Options.BeforeSchedulerTick: a test's stall.
	beforeTick func(ctx context.Context)

	mu          sync.Mutex
	sched       Schedule
	running     CheckSet // "" when idle
	pendingFull bool
	nextDefault time.Time
	nextFull    time.Time
	lastTick    time.Time
	skipped     map[CheckSet]int
	runs        map[CheckSet]int
	wake        chan struct{}
	wg          sync.WaitGroup
}

// NewScheduler is a scheduler that calls run for each due patrol. The
// first default patrol is due at once.
func NewScheduler(c Clock, s Schedule, run func(context.Context, CheckSet), onSkip func(CheckSet)) *Scheduler {
	if c == nil {
		c = realClock{}
	}
	if onSkip == nil {
		onSkip = func(CheckSet) {}
	}
	now := c.Now()
	sc := &Scheduler{clock: c, run: run, onSkip: onSkip, sched: s, nextDefault: now,
		skipped: map[CheckSet]int{}, runs: map[CheckSet]int{}, wake: make(chan struct{}, 1)}
	sc.nextFull, _ = s.NextFull(now)
	return sc
}

// SetSchedule replaces the schedule (a reload); the next slots are
// recomputed from now.
func (sc *Scheduler) SetSchedule(s Schedule) {
	sc.mu.Lock()
	now := sc.clock.Now()
	if s.Every != sc.sched.Every {
		sc.nextDefault = now.Add(s.Every)
	}
	sc.sched = s
	sc.nextFull, _ = s.NextFull(now)
	sc.mu.Unlock()
	select {
	case sc.wake <- struct{}{}:
	default:
	}
}

// Loop runs until ctx ends, then waits for nothing: Wait does.
func (sc *Scheduler) Loop(ctx context.Context, runCtx context.Context) {
	for {
		if sc.beforeTick != nil {
			sc.beforeTick(ctx)
			if ctx.Err() != nil {
				return
			}
		}
		wait := sc.tick(runCtx)
		select {
		case <-ctx.Done():
			return
		case <-sc.clock.After(wait):
		case <-sc.wake:
		}
	}
}

// Wait blocks until the running patrol (if any) has returned.
func (sc *Scheduler) Wait() { sc.wg.Wait() }

// tick starts what is due and returns how long to sleep. It sleeps at most
// one default period, so a healthy loop ticks at least that often.
func (sc *Scheduler) tick(ctx context.Context) time.Duration {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	now := sc.clock.Now()
	sc.lastTick = now
	if !sc.nextFull.IsZero() && !now.Before(sc.nextFull) {
		sc.nextFull, _ = sc.sched.NextFull(now)
		if sc.running == "" {
			sc.startLocked(ctx, SetFull)
		} else if sc.pendingFull {
			sc.skipLocked(SetFull)
		} else {
			sc.pendingFull = true
		}
	}
	if !now.Before(sc.nextDefault) {
		// The next slot follows the period from the slot itself; a loop
		// that fell behind by more than one period does not run a burst.
		sc.nextDefault = sc.nextDefault.Add(sc.sched.Every)
		if !sc.nextDefault.After(now) {
			sc.nextDefault = now.Add(sc.sched.Every)
		}
		if sc.running == "" {
			sc.startLocked(ctx, SetDefault)
		} else {
			sc.skipLocked(SetDefault)
		}
	}
	next := sc.nextDefault
	if !sc.nextFull.IsZero() && sc.nextFull.Before(next) {
		next = sc.nextFull
	}
	return max(next.Sub(now), time.Millisecond)
}

func (sc *Scheduler) skipLocked(set CheckSet) {
	sc.skipped[set]++
	sc.onSkip(set)
}

func (sc *Scheduler) startLocked(ctx context.Context, set CheckSet) {
	sc.running = set
	sc.runs[set]++
	sc.wg.Add(1)
	go func() {
		defer sc.wg.Done()
		sc.run(ctx, set)
		sc.mu.Lock()
		sc.running = ""
		if sc.pendingFull && ctx.Err() == nil {
			sc.pendingFull = false
			sc.startLocked(ctx, SetFull)
		}
		sc.mu.Unlock()
	}()
}

// ScheduleStatus is what /status shows of the scheduler.
type ScheduleStatus struct {
	Running     CheckSet         `json:"running,omitempty"`
	NextDefault time.Time        `json:"next_default"`
	NextFull    *time.Time       `json:"next_full,omitempty"`
	LastTick    time.Time        `json:"last_tick"`
	Runs        map[CheckSet]int `json:"runs"`
	Skipped     map[CheckSet]int `json:"skipped"`
}

// Status is a snapshot for /status and /healthz.
func (sc *Scheduler) Status() ScheduleStatus {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st := ScheduleStatus{Running: sc.running, NextDefault: sc.nextDefault, LastTick: sc.lastTick,
		Runs: map[CheckSet]int{}, Skipped: map[CheckSet]int{}}
	if !sc.nextFull.IsZero() {
		nf := sc.nextFull
		st.NextFull = &nf
	}
	for k, v := range sc.runs {
		st.Runs[k] = v
	}
	for k, v := range sc.skipped {
		st.Skipped[k] = v
	}
	return st
}
