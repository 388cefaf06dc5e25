package patrol

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MetricPoint is the current value of one of the agent's instruments for
// one attribute set, as the daemon reads them from its meter provider.
// Counters and gauges set Value (counters cumulative); histograms set
// Bounds and Counts (per bucket, len(Bounds)+1, cumulative over time).
type MetricPoint struct {
	Name   string
	Attrs  map[string]string
	Value  float64
	Bounds []float64
	Counts []uint64
}

// MetricSource gives metric rules a snapshot of the agent's instruments.
type MetricSource interface {
	Snapshot() []MetricPoint
}

// MetricQuery is a parsed metric rule query:
//
//	NAME{attr="v",attr!="v"}              the sum of the matching points now
//	rate(NAME{…}[5m])                     per-second increase over the window
//	increase(NAME{…}[1m])                 increase over the window
//	quantile(0.95, NAME{…}[10m])          a histogram quantile over the window
type MetricQuery struct {
	Func     string // "", rate, increase, quantile
	Q        float64
	Name     string
	Match    []Matcher
	Window   time.Duration
	original string
}

// Matcher selects points by one attribute.
type Matcher struct {
	Key, Value string
	Not        bool
}

var (
	metricFuncRE = regexp.MustCompile(`^(rate|increase|quantile)\s*\((.*)\)$`)
	metricSelRE  = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_.]*)\s*(?:\{(.*)\})?\s*(?:\[([0-9a-z]+)\])?$`)
	matcherRE    = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(!?=)\s*"((?:[^"\\]|\\.)*)"\s*$`)
)

func parseMetricQuery(s string) (MetricQuery, error) {
	q := MetricQuery{original: s}
	body := strings.TrimSpace(s)
	if m := metricFuncRE.FindStringSubmatch(body); m != nil {
		q.Func, body = m[1], strings.TrimSpace(m[2])
		if q.Func == "quantile" {
			qs, rest, ok := strings.Cut(body, ",")
			f, err := strconv.ParseFloat(strings.TrimSpace(qs), 64)
			if !ok || err != nil || f < 0 || f > 1 {
				return q, fmt.Errorf("%q: quantile takes a number from 0 to 1 and a selector, e.g. quantile(0.95, gopatrol.toolchain.invocation.duration[10m])", s)
			}
			q.Q, body = f, strings.TrimSpace(rest)
		}
	}
	m := metricSelRE.FindStringSubmatch(body)
	if m == nil {
		return q, fmt.Errorf("%q: want NAME{attr=\"value\"}, rate(NAME{…}[5m]), increase(NAME{…}[1m]) or quantile(0.95, NAME{…}[10m])", s)
	}
	q.Name = m[1]
	if m[2] != "" {
		for part := range strings.SplitSeq(m[2], ",") {
			mm := matcherRE.FindStringSubmatch(part)
			if mm == nil {
				return q, fmt.Errorf("%q: %q is not a matcher attr=\"value\" or attr!=\"value\"", s, strings.TrimSpace(part))
			}
			v, err := strconv.Unquote(`"` + mm[3] + `"`)
			if err != nil {
				return q, fmt.Errorf("%q: %q: %w", s, mm[3], err)
			}
			q.Match = append(q.Match, Matcher{Key: mm[1], Value: v, Not: mm[2] == "!="})
		}
	}
	if m[3] != "" {
		d, err := time.ParseDuration(m[3])
		if err != nil || d <= 0 {
			return q, fmt.Errorf("%q: window %q: want a duration such as 5m", s, m[3])
		}
		q.Window = d
	}
	if q.Func != "" && q.Window == 0 {
		return q, fmt.Errorf("%q: %s needs a window, e.g. [5m] after the selector", s, q.Func)
	}
	if q.Func == "" && q.Window != 0 {
		return q, fmt.Errorf("%q: a window needs rate, increase or quantile around the selector", s)
	}
	return q, nil
}

func (q MetricQuery) matches(p MetricPoint) bool {
	if p.Name != q.Name {
		return false
	}
	for _, m := range q.Match {
		if (p.Attrs[m.Key] == m.Value) == m.Not {
			return false
		}
	}
	return true
}

// windowSample is one snapshot of a rule's selection: the summed value and
// summed histogram counts.
type windowSample struct {
	t      time.Time
	v      float64
	bounds []float64
	counts []uint64
	found  bool
}

// window keeps a metric rule's snapshots over its window.
type window struct{ samples []windowSample }

type metricProbe struct {
	q   MetricQuery
	src MetricSource
	win *window
	now func() time.Time
}

func (e *Engine) metricProbe(r Rule, q MetricQuery) Probe {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := r.Name + "\x00" + r.Query
	w, ok := e.win[key]
	if !ok {
		w = &window{}
		e.win[key] = w
	}
	return metricProbe{q: q, src: e.cfg.Metrics, win: w, now: e.cfg.Now}
}

func (p metricProbe) Probe(context.Context) []Sample {
	if p.src == nil {
		return []Sample{{Err: fmt.Errorf("no metric source: the agent's instruments are not available to the engine")}}
	}
	now := p.now()
	cur := windowSample{t: now}
	for _, pt := range p.src.Snapshot() {
		if !p.q.matches(pt) {
			continue
		}
		cur.found = true
		cur.v += pt.Value
		if len(pt.Counts) > 0 {
			if cur.counts == nil {
				cur.bounds, cur.counts = pt.Bounds, make([]uint64, len(pt.Counts))
			}
			if len(pt.Counts) == len(cur.counts) {
				for i, c := range pt.Counts {
					cur.counts[i] += c
				}
			}
		}
	}
	if p.q.Func == "" {
		if !cur.found {
			return []Sample{{Err: fmt.Errorf("%s: no point matches", p.q.original)}}
		}
		return []Sample{{Value: cur.v}}
	}
	if !cur.found { // an instrument not yet touched counts from zero
		cur.found = true
	}
	base, ok := p.win.push(cur, p.q.Window)
	if !ok {
		return []Sample{{Err: fmt.Errorf("%s: one sample so far; the window needs two", p.q.original)}}
	}
	switch p.q.Func {
	case "rate", "increase":
		d := cur.v - base.v
		if d < 0 { // the counter restarted (agent restart)
			d = cur.v
		}
		if p.q.Func == "rate" {
			d /= cur.t.Sub(base.t).Seconds()
		}
		return []Sample{{Value: d}}
	}
	v, err := quantile(p.q.Q, cur, base)
	if err != nil {
		return []Sample{{Err: fmt.Errorf("%s: %w", p.q.original, err)}}
	}
	return []Sample{{Value: v}}
}

// push adds cur and returns the sample to compare it with: the newest one
// at least the window old, else the oldest kept. Older ones are dropped.
func (w *window) push(cur windowSample, span time.Duration) (windowSample, bool) {
	cut := cur.t.Add(-span)
	i := sort.Search(len(w.samples), func(i int) bool { return w.samples[i].t.After(cut) })
	if i > 0 {
		w.samples = append(w.samples[:0], w.samples[i-1:]...)
	}
	w.samples = append(w.samples, cur)
	if len(w.samples) < 2 {
		return windowSample{}, false
	}
	return w.samples[0], true
}

// quantile interpolates linearly inside the bucket holding the q-th
// observation of the window's increase, as Prometheus's
// histogram_quantile does.
func quantile(q float64, cur, base windowSample) (float64, error) {
	if len(cur.counts) == 0 {
		return 0, fmt.Errorf("not a histogram")
	}
	inc := make([]float64, len(cur.counts))
	var total float64
	for i, c := range cur.counts {
		d := float64(c)
		if len(base.counts) == len(cur.counts) && c >= base.counts[i] {
			d -= float64(base.counts[i])
		}
		inc[i] = d
		total += d
	}
	if total == 0 {
		return 0, fmt.Errorf("no observations in the window")
	}
	rank := q * total
	var seen float64
	for i, c := range inc {
		if seen+c >= rank && c > 0 {
			lo := 0.0
			if i > 0 {
				lo = cur.bounds[i-1]
			}
			if i == len(cur.bounds) { // the +Inf bucket: its lower bound is all we know
				return lo, nil
			}
			return lo + (cur.bounds[i]-lo)*(rank-seen)/c, nil
		}
		seen += c
	}
	return math.NaN(), fmt.Errorf("quantile %g not found", q)
}
