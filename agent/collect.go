package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/gopatrol/gopatrol/metricdef"
	"github.com/gopatrol/gopatrol/plugins/host"
	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// CollectConfig says how often the agent asks the probe plugins for their
// cloud metrics (their Collect). A probe that calls a priced API
// (CloudWatch) has its own, rarer, gate inside the plugin: the agent's
// interval only bounds how fresh the points can be.
type CollectConfig struct {
	// Every is the interval for every probe (1m); 0 turns collection off.
	Every time.Duration `yaml:"every"`
	// Probes overrides Every per probe name (0 turns that probe off).
	Probes map[string]time.Duration `yaml:"probes"`
}

// minCollect is the shortest interval: the metrics behind Collect change
// by the minute at best.
const minCollect = 10 * time.Second

func (c CollectConfig) validate(file string) error {
	bad := func(key string, d time.Duration) error {
		return &ConfigError{File: file, Key: key, Msg: fmt.Sprintf("%v: want 0 (off) or a duration of at least %v", d, minCollect)}
	}
	if c.Every != 0 && c.Every < minCollect {
		return bad("collect.every", c.Every)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Probes)) {
		if d := c.Probes[name]; d != 0 && d < minCollect {
			return bad("collect.probes."+name, d)
		}
	}
	return nil
}

func (c CollectConfig) every(probe string) time.Duration {
	if d, ok := c.Probes[probe]; ok {
		return d
	}
	return c.Every
}

// collector calls the plugins' Collect on their intervals and records the
// points on the catalogue's cloud instruments.
type collector struct {
	cfg     CollectConfig
	host    *host.Host
	gauges  map[string]metric.Float64Gauge
	log     func(msg string, args ...any)
	clock   Clock
	next    map[string]time.Time
	mu      sync.Mutex
	dropped map[string]bool // point names already warned about
}

func newCollector(cfg CollectConfig, h *host.Host, gauges map[string]metric.Float64Gauge, clock Clock, warn func(string, ...any)) *collector {
	return &collector{cfg: cfg, host: h, gauges: gauges, log: warn, clock: clock, next: map[string]time.Time{}, dropped: map[string]bool{}}
}

// cloudSpecs indexes the cloud instruments' specs by name.
var cloudSpecs = func() map[string]metricdef.Spec {
	m := map[string]metricdef.Spec{}
	for _, s := range metricdef.CloudSpecs {
		m[s.Name] = s
	}
	return m
}()

// cycle collects from every probe that is due at now and records the
// points; it returns the time of the next due probe (zero for none).
func (c *collector) cycle(ctx context.Context, now time.Time) time.Time {
	results := c.host.Collect(ctx, func(name string) bool {
		every := c.cfg.every(name)
		if every <= 0 || now.Before(c.next[name]) {
			return false
		}
		c.next[name] = now.Add(every)
		return true
	})
	for _, r := range results {
		if r.Err != nil {
			// The plugin's error names the failed request; it never
			// carries credentials, which stay in the plugin.
			c.log("probe collection failed", "plugin", r.Plugin, "err", r.Err)
			continue
		}
		c.record(ctx, r.Plugin, r.Points)
	}
	var first time.Time
	for _, t := range c.next {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first
}

// record puts each point on its instrument with the spec's attributes
// only (a probe cannot raise the cardinality) and the plugin's name.
func (c *collector) record(ctx context.Context, plugin string, pts []sdk.Point) {
	for _, p := range pts {
		s, ok := cloudSpecs[p.Name]
		if !ok || s.Unit != p.Unit {
			c.mu.Lock()
			warned := c.dropped[p.Name+" "+p.Unit]
			c.dropped[p.Name+" "+p.Unit] = true
			c.mu.Unlock()
			if !warned {
				c.log("probe point dropped: not a catalogue instrument in that unit", "plugin", plugin, "name", p.Name, "unit", p.Unit)
			}
			continue
		}
		attrs := []attribute.KeyValue{metricdef.AttrProbePlugin.String(plugin)}
		for _, k := range s.Attributes {
			if v, ok := p.Attributes[string(k)]; ok && k != metricdef.AttrProbePlugin {
				attrs = append(attrs, k.String(v))
			}
		}
		c.gauges[p.Name].Record(ctx, p.Value, metric.WithAttributes(attrs...))
	}
}

// collectLoop runs the cycles until ctx ends.
func (a *agent) collectLoop(ctx context.Context) {
	if a.plugins == nil || a.rec == nil {
		return
	}
	cfg := a.plan.cfg.Collect
	c := newCollector(cfg, a.plugins, a.rec.Instruments().Cloud, a.clock, a.log.Warn)
	for {
		next := c.cycle(ctx, a.clock.Now())
		if next.IsZero() {
			return // every probe is off
		}
		select {
		case <-ctx.Done():
			return
		case <-a.clock.After(max(next.Sub(a.clock.Now()), time.Second)):
		}
	}
}
