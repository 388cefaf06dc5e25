package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// progressLine shows on a terminal's stderr which checks still run, so
// that a first run on a cold build cache (a minute of compiling the
// standard library) reads as work, not a hang (issue 14). It redraws one
// line and erases it when the checks are done; off a terminal it is
// silent, so logs and pipes get only the report.
type progressLine struct {
	w       io.Writer
	total   int
	start   time.Time
	mu      sync.Mutex
	done    int
	running map[string]time.Time
	stop    chan struct{}
	stopped sync.WaitGroup
}

// progressDelay is how long the checks run before the line appears: a
// warm run ends sooner and never flickers.
const progressDelay = 700 * time.Millisecond

// newProgress starts a progress line on w when w is a terminal, else
// returns nil (whose methods do nothing).
func newProgress(w io.Writer, total int) *progressLine {
	if !isTerminal(w) {
		return nil
	}
	p := &progressLine{w: w, total: total, start: time.Now(), running: map[string]time.Time{}, stop: make(chan struct{})}
	p.stopped.Add(1)
	go p.loop()
	return p
}

// event is check.Runner.Progress.
func (p *progressLine) event(id string, done bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if done {
		p.done++
		delete(p.running, id)
	} else {
		p.running[id] = time.Now()
	}
}

func (p *progressLine) loop() {
	defer p.stopped.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	shown := false
	for {
		select {
		case <-p.stop:
			if shown {
				fmt.Fprint(p.w, "\r\x1b[K")
			}
			return
		case now := <-t.C:
			if now.Sub(p.start) < progressDelay {
				continue
			}
			p.mu.Lock()
			line := p.render(now)
			p.mu.Unlock()
			fmt.Fprint(p.w, "\r\x1b[K"+line)
			shown = true
		}
	}
}

// render is the line: how many checks are done, and the slowest of those
// still running with how long they have run.
func (p *progressLine) render(now time.Time) string {
	ids := make([]string, 0, len(p.running))
	for id := range p.running {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return p.running[a].Compare(p.running[b]) })
	var parts []string
	for _, id := range ids[:min(len(ids), 3)] {
		parts = append(parts, fmt.Sprintf("%s %s", id, now.Sub(p.running[id]).Round(time.Second)))
	}
	line := fmt.Sprintf("checking: %d/%d done", p.done, p.total)
	if len(parts) > 0 {
		line += "; running " + strings.Join(parts, ", ")
		if len(ids) > 3 {
			line += fmt.Sprintf(" and %d more", len(ids)-3)
		}
	}
	return line
}

// end erases the line; the report follows on a clean line.
func (p *progressLine) end() {
	if p == nil {
		return
	}
	close(p.stop)
	p.stopped.Wait()
}
