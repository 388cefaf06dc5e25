package host

import (
	"context"
	"sync"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// Collection is one plugin's answer to a collection.
type Collection struct {
	Plugin   string
	Points   []sdk.Point
	Err      error
	Duration time.Duration
}

// Collect asks every plugin for which due reports true (all when due is
// nil) for its points, in parallel, each under the call deadline. A
// plugin's error fails its own collection only.
func (h *Host) Collect(ctx context.Context, due func(plugin string) bool) []Collection {
	var (
		out []Collection
		mu  sync.Mutex
		wg  sync.WaitGroup
	)
	for _, p := range h.plugins {
		if due != nil && !due(p.Name) {
			continue
		}
		wg.Go(func() {
			start := time.Now()
			pts, err := p.Collect(ctx)
			mu.Lock()
			out = append(out, Collection{Plugin: p.Name, Points: pts, Err: err, Duration: time.Since(start)})
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
