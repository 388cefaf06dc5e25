package cloudapi

import (
	"sync"
	"time"
)

// Gate lets a priced or quota-bound API be called at most once per Every:
// between calls the probe answers with what it got last time. A zero Every
// means the API is off.
type Gate struct {
	Every time.Duration

	mu   sync.Mutex
	last time.Time
}

// Allow reports whether a call may go out at now, and if so counts it.
func (g *Gate) Allow(now time.Time) bool {
	if g.Every <= 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.last.IsZero() && now.Sub(g.last) < g.Every {
		return false
	}
	g.last = now
	return true
}
