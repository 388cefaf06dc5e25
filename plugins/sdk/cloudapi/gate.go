package cloudapi

import (
	"slices"
	"sync"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// Sampler calls a priced or quota-bound API at most once per Every and,
// between calls, answers the points of the last one again: the agent
// collects more often than such an API may be asked. A zero Every means
// the API is off.
type Sampler struct {
	Every time.Duration

	mu   sync.Mutex
	at   time.Time
	last []sdk.Point
}

// Points returns fetch's points if Every has passed since the last call
// (which it counts), else the last call's points. A failed call drops
// the last points: stale values must not pass for fresh ones.
func (s *Sampler) Points(now time.Time, fetch func() ([]sdk.Point, error)) ([]sdk.Point, error) {
	if s.Every <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.at.IsZero() && now.Sub(s.at) < s.Every {
		return slices.Clone(s.last), nil
	}
	s.at = now
	pts, err := fetch()
	if err != nil {
		s.last = nil
		return nil, err
	}
	s.last = pts
	return slices.Clone(pts), nil
}
