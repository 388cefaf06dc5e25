package host

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// Precedence is the fixed order in which probes' attributes are merged:
// the first writer of a key wins. OpenShift comes first because its
// platform (aws_openshift...) is more specific than the VM's (aws_ec2);
// probes not listed follow in name order.
var Precedence = []string{"openshift", "aws", "azure", "gcp", "alibaba"}

// Report is one detection across all plugins.
type Report struct {
	// Attributes is the merged resource: key to value.
	Attributes map[string]string `json:"attributes"`
	// Sources names the plugin that set each attribute.
	Sources map[string]string `json:"sources"`
	// Results are the plugins' own answers, in precedence order.
	Results    []Result      `json:"results"`
	Duration   time.Duration `json:"-"`
	DurationMS float64       `json:"duration_ms"`
}

// Detect runs every plugin's Detect in parallel under ctx (each call also
// has the host's call deadline) and merges the answers.
func (h *Host) Detect(ctx context.Context) Report {
	start := time.Now()
	ordered := slices.Clone(h.plugins)
	slices.SortStableFunc(ordered, func(a, b *Plugin) int { return rank(a.Name) - rank(b.Name) })
	results := make([]Result, len(ordered))
	var wg sync.WaitGroup
	for i, p := range ordered {
		wg.Go(func() { results[i] = p.Detect(ctx) })
	}
	wg.Wait()
	r := h.merge(results)
	r.Duration = time.Since(start)
	r.DurationMS = float64(r.Duration.Microseconds()) / 1000
	return r
}

func rank(name string) int {
	if i := slices.Index(Precedence, name); i >= 0 {
		return i
	}
	return len(Precedence) // then name order: plugins are sorted by name
}

// merge applies first-writer-wins over results already in precedence
// order, and logs every conflict. Stale attributes (a plugin restarting)
// count: the node did not move while its probe was down.
func (h *Host) merge(results []Result) Report {
	r := Report{Attributes: map[string]string{}, Sources: map[string]string{}, Results: results}
	for _, res := range results {
		if res.Status != sdk.Detected && res.Status != StatusStale {
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(res.Attributes)) {
			v := res.Attributes[k]
			if old, ok := r.Attributes[k]; ok {
				if old != v {
					h.cfg.Logger.Warn("probe attributes conflict, keeping the first by precedence",
						"key", k, "kept", old, "kept_from", r.Sources[k], "dropped", v, "dropped_from", res.Plugin)
				}
				continue
			}
			r.Attributes[k], r.Sources[k] = v, res.Plugin
		}
	}
	return r
}
