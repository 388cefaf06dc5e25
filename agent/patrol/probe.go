package patrol

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Sample is one value a rule measured, for one label set. A sample with Err
// is unknown: it counts as an evaluation error and neither starts nor ends
// an episode.
type Sample struct {
	// Labels are what the probe adds to the rule's labels, e.g. the check
	// ID of a check rule over a glob. Each label set has its own baseline
	// and episode.
	Labels map[string]string
	// Annotations describe the series for its alerts (an environment's
	// user and container); they are not part of its identity.
	Annotations map[string]string
	Value       float64
	Message     string
	Err         error
}

// Probe measures a rule once. Local rule types are probes of this package;
// promql and sql come through a Source.
type Probe interface {
	Probe(ctx context.Context) []Sample
}

// Source is what the promql and sql evaluators (agent/patrol/query)
// provide: one number per evaluation.
type Source interface {
	Query(ctx context.Context) (float64, error)
}

// SourceFactory builds the Source of one rule. The caller registers one per
// rule type it supports in Config.Sources (promql, sql).
type SourceFactory func(Rule) (Source, error)

type sourceProbe struct{ src Source }

func (p sourceProbe) Probe(ctx context.Context) []Sample {
	v, err := p.src.Query(ctx)
	return []Sample{{Value: v, Err: err}}
}

// ProbeFunc adapts a function to Probe.
type ProbeFunc func(ctx context.Context) []Sample

// Probe calls f.
func (f ProbeFunc) Probe(ctx context.Context) []Sample { return f(ctx) }

// newProbe builds the probe for a rule from the engine's configuration. It
// fails for what a valid file cannot know: a type whose source is not
// registered, exec not allowed, a check glob that matches nothing.
func (e *Engine) newProbe(r Rule) (Probe, error) {
	if e.override != nil {
		if p := e.override(r); p != nil {
			return p, nil
		}
	}
	switch r.Type {
	case TypeCheck:
		if e.cfg.Checks == nil {
			return nil, fmt.Errorf("check rules need the doctor's checks, and none were given to the engine")
		}
		ids := matchChecks(e.cfg.Checks.IDs(), r.Target)
		if len(ids) == 0 {
			return nil, fmt.Errorf("target %q matches no check ID (gopatrol check --list shows them)", r.Target)
		}
		return checkProbe{ids: ids, checks: e.cfg.Checks, scope: r.Scope, envs: e.cfg.Environments}, nil
	case TypeMetric:
		q, err := parseMetricQuery(r.Query)
		if err != nil {
			return nil, err
		}
		return e.metricProbe(r, q), nil
	case TypeHTTP:
		return httpProbe{url: r.Target, measure: measure(r), timeout: e.timeout(r), client: e.cfg.HTTPClient}, nil
	case TypeDNS:
		return dnsProbe{name: r.Target, measure: measure(r), timeout: e.timeout(r), resolver: e.cfg.Resolver}, nil
	case TypeTLS:
		return tlsProbe{addr: r.Target, measure: measure(r), timeout: e.timeout(r), roots: e.cfg.TLSRoots}, nil
	case TypeExec:
		if !e.cfg.AllowExec {
			return nil, fmt.Errorf("exec rules are refused: the agent config does not allow them (set patrol exec on in the agent config)")
		}
		argv := strings.Fields(r.Target)
		return execProbe{argv: argv, timeout: e.timeout(r)}, nil
	}
	f, ok := e.cfg.Sources[r.Type]
	if !ok {
		return nil, fmt.Errorf("no %s evaluator is configured in this agent (known: %s)", r.Type, strings.Join(slices.Sorted(maps.Keys(e.cfg.Sources)), ", "))
	}
	src, err := f(r)
	if err != nil {
		return nil, fmt.Errorf("%s source: %w", r.Type, err)
	}
	return sourceProbe{src}, nil
}

func measure(r Rule) string {
	if r.Query != "" {
		return r.Query
	}
	return queries[r.Type][0]
}

// errProbe is a rule that cannot run here (Config.Lenient).
type errProbe struct{ err error }

func (p errProbe) Probe(context.Context) []Sample { return []Sample{{Err: p.err}} }
