package agent

import (
	"context"
	"testing"
	"time"
)

func TestNextFull(t *testing.T) {
	loc := time.FixedZone("node", 8*3600)
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name  string
		now   string
		at    string
		splay time.Duration
		want  string
	}{
		{"before today's slot", "2026-03-01 01:00", "02:00", 0, "2026-03-01 02:00"},
		{"after today's slot", "2026-03-01 02:00", "02:00", 0, "2026-03-02 02:00"},
		{"splay moves the slot", "2026-03-01 01:00", "02:00", 17 * time.Minute, "2026-03-01 02:17"},
		{"inside the splay window", "2026-03-01 02:10", "02:00", 17 * time.Minute, "2026-03-01 02:17"},
		{"splay past midnight, yesterday's slot still ahead", "2026-03-02 00:30", "23:50", time.Hour, "2026-03-02 00:50"},
		{"end of month", "2026-02-28 23:00", "02:00", 0, "2026-03-01 02:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Schedule{FullAt: tt.at, Splay: tt.splay, Loc: loc}
			got, ok := s.NextFull(at(tt.now))
			if !ok || !got.Equal(at(tt.want)) {
				t.Errorf("NextFull(%s) = %v, %v; want %s", tt.now, got, ok, tt.want)
			}
		})
	}
	if _, ok := (Schedule{}).NextFull(time.Now()); ok {
		t.Error("an empty FullAt has a slot")
	}
}

func TestSplayStableAndBounded(t *testing.T) {
	const window = 30 * time.Minute
	seen := map[time.Duration]bool{}
	for _, id := range []string{"node-a", "node-b", "node-c", "node-d", "4c4c4544-0042-3510-8052-b4c04f384d32"} {
		s := Splay(id, window)
		if s < 0 || s >= window {
			t.Errorf("Splay(%s) = %v, outside [0, %v)", id, s, window)
		}
		if Splay(id, window) != s {
			t.Errorf("Splay(%s) not stable", id)
		}
		seen[s] = true
	}
	if len(seen) < 4 {
		t.Errorf("five hosts share %d splays: not spread", len(seen))
	}
	if Splay("x", 0) != 0 {
		t.Error("no window, yet a splay")
	}
}

// schedWorld is a scheduler on a fake clock whose patrols block until the
// test releases them.
type schedWorld struct {
	clock   *fakeClock
	sc      *Scheduler
	started chan CheckSet
	release chan struct{}
	skips   chan CheckSet
}

func newSchedWorld(t *testing.T, s Schedule, now time.Time) *schedWorld {
	w := &schedWorld{clock: newFakeClock(now), started: make(chan CheckSet, 10), release: make(chan struct{}), skips: make(chan CheckSet, 10)}
	w.sc = NewScheduler(w.clock, s, func(ctx context.Context, set CheckSet) {
		w.started <- set
		select {
		case <-w.release:
		case <-ctx.Done():
		}
	}, func(set CheckSet) { w.skips <- set })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.sc.Loop(ctx, ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; w.sc.Wait() })
	return w
}

func (w *schedWorld) expectStart(t *testing.T, want CheckSet) {
	t.Helper()
	expect(t, w.started, want, "started")
}

func (w *schedWorld) expectSkip(t *testing.T, want CheckSet) {
	t.Helper()
	expect(t, w.skips, want, "skipped")
}

func expect(t *testing.T, ch <-chan CheckSet, want CheckSet, what string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("%s %s, want %s", what, got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s patrol %s", want, what)
	}
}

// finish releases the running patrol and waits until the scheduler saw it
// end.
func (w *schedWorld) finish(t *testing.T) {
	t.Helper()
	w.release <- struct{}{}
	for deadline := time.Now().Add(5 * time.Second); w.sc.Status().Running != ""; {
		if time.Now().After(deadline) {
			t.Fatal("patrol never ended")
		}
		time.Sleep(time.Millisecond)
	}
}

// advance moves the clock once the loop waits on it again.
func (w *schedWorld) advance(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-w.clock.waiting:
	case <-time.After(5 * time.Second):
		t.Fatal("scheduler loop never waited")
	}
	w.clock.Advance(d)
}

func TestSchedulerSkipsOverlapAndCounts(t *testing.T) {
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	w := newSchedWorld(t, Schedule{Every: 5 * time.Minute}, start)
	w.expectStart(t, SetDefault) // due at once
	w.advance(t, 5*time.Minute)  // the first is still running
	w.expectSkip(t, SetDefault)
	w.finish(t)
	w.advance(t, 5*time.Minute)
	w.expectStart(t, SetDefault)
	w.finish(t)
	st := w.sc.Status()
	if st.Runs[SetDefault] != 2 || st.Skipped[SetDefault] != 1 {
		t.Errorf("runs %v skipped %v; want 2 runs, 1 skip", st.Runs, st.Skipped)
	}
	if want := start.Add(15 * time.Minute); !st.NextDefault.Equal(want) {
		t.Errorf("next default %v, want %v", st.NextDefault, want)
	}
}

func TestSchedulerFullWaitsForRunningDefault(t *testing.T) {
	start := time.Date(2026, 3, 1, 1, 59, 0, 0, time.UTC)
	w := newSchedWorld(t, Schedule{Every: 5 * time.Minute, FullAt: "02:00", Loc: time.UTC}, start)
	w.expectStart(t, SetDefault)
	w.advance(t, time.Minute) // 02:00: full is due while default runs
	select {
	case set := <-w.started:
		t.Fatalf("%s started while a patrol ran", set)
	case <-time.After(100 * time.Millisecond):
	}
	w.release <- struct{}{} // default ends; the pending full starts
	w.expectStart(t, SetFull)
	w.finish(t)
	if nf := w.sc.Status().NextFull; nf == nil || !nf.Equal(start.Add(24*time.Hour+time.Minute)) {
		t.Errorf("next full %v, want tomorrow 02:00", nf)
	}
}
