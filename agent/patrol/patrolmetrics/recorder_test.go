package patrolmetrics

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gopatrol/gopatrol/agent/patrol"
	"github.com/gopatrol/gopatrol/metricdef"
)

// evaluateOnce evaluates the rules of dir once with an engine of cfg
// recording through this package into a real SDK reader, and collects.
func evaluateOnce(t *testing.T, cfg patrol.Config, dir string) metricdata.ResourceMetrics {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	in, err := metricdef.NewInstruments(mp.Meter("patrolmetrics_test"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Instruments = New(in)
	e, err := patrol.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Load(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EvaluateAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// An engine with this recorder puts each evaluation on the instruments, as
// a real SDK reader collects them.
func TestEngineRecordsInstruments(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "fail.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho broken\nexit 1\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(`
- {name: broken, type: exec, target: "`+script+`", labels: {service: build}, weight: 10}
- {name: odd, type: exec, target: "/bin/sh /nonexistent/script"}
- {name: steady, type: exec, target: /bin/true, threshold: "ewma(alpha=0.5,k=3)"}
`), 0o644)
	rm := evaluateOnce(t, patrol.Config{AllowExec: true}, dir)
	got := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m.Data
		}
	}
	gaugeAt := func(name, key, val string) (float64, bool) {
		switch d := got[name].(type) {
		case metricdata.Gauge[float64]:
			for _, p := range d.DataPoints {
				if v, ok := p.Attributes.Value(attribute.Key(key)); ok && v.AsString() == val {
					return p.Value, true
				}
			}
		case metricdata.Gauge[int64]:
			for _, p := range d.DataPoints {
				if v, ok := p.Attributes.Value(attribute.Key(key)); ok && v.AsString() == val {
					return float64(p.Value), true
				}
			}
		}
		return 0, false
	}
	if v, ok := gaugeAt("gopatrol.rule.value", "gopatrol.rule.name", "broken"); !ok || v != 1 {
		t.Errorf("rule.value broken = %v %v", v, ok)
	}
	if v, ok := gaugeAt("gopatrol.rule.state", "gopatrol.rule.name", "broken"); !ok || v != 2 {
		t.Errorf("rule.state broken = %v %v, want 2 (firing)", v, ok)
	}
	if v, ok := gaugeAt("gopatrol.rule.baseline.mean", "gopatrol.rule.name", "steady"); !ok || v != 0 {
		t.Errorf("baseline mean steady = %v %v", v, ok)
	}
	if v, ok := gaugeAt("gopatrol.group.score", "gopatrol.group", "service=build"); !ok || v != 100 {
		t.Errorf("group score = %v %v (a fresh episode has lasted 0 minutes)", v, ok)
	}
	errs, ok := got["gopatrol.rule.evaluation.errors"].(metricdata.Sum[int64])
	if !ok || len(errs.DataPoints) != 1 || errs.DataPoints[0].Value != 1 {
		t.Errorf("evaluation errors = %+v", got["gopatrol.rule.evaluation.errors"])
	}
	if h, ok := got["gopatrol.rule.evaluation.duration"].(metricdata.Histogram[float64]); !ok || len(h.DataPoints) != 3 {
		t.Errorf("evaluation durations = %+v", got["gopatrol.rule.evaluation.duration"])
	}
}

// remedyFunc is a patrol.Remedier from a function.
type remedyFunc func(ctx context.Context, r patrol.Rule, fix string) (patrol.Attempt, error)

func (f remedyFunc) Remediate(ctx context.Context, r patrol.Rule, fix string) (patrol.Attempt, error) {
	return f(ctx, r, fix)
}

// A rule that remediates counts its action by outcome and sets its repair
// rate: one held repair (a missing directory created) and one refused.
func TestEngineRecordsActions(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "cache")
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(`
- {name: mend, type: exec, target: "test -d `+missing+`", remediate: gocache.writable}
- {name: refuse, type: exec, target: "test -d `+missing+`/x", remediate: goroot.valid}
`), 0o644)
	rem := remedyFunc(func(ctx context.Context, r patrol.Rule, fix string) (patrol.Attempt, error) {
		if fix == "goroot.valid" {
			return patrol.Attempt{Check: fix, Refused: "changing the toolchain install is never automated"}, nil
		}
		if err := os.Mkdir(missing, 0o755); err != nil {
			return patrol.Attempt{}, err
		}
		_, err := os.Stat(missing)
		return patrol.Attempt{Check: fix, Held: err == nil}, nil
	})
	rm := evaluateOnce(t, patrol.Config{AllowExec: true,
		Remediation: patrol.RemediationConfig{Enabled: true, Remedier: rem}}, dir)
	counts := map[string]int64{}
	rates := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if m.Name != "gopatrol.rule.actions" {
					continue
				}
				for _, p := range d.DataPoints {
					rule, _ := p.Attributes.Value(metricdef.AttrRuleName)
					out, _ := p.Attributes.Value(metricdef.AttrRuleOutcome)
					counts[rule.AsString()+"="+out.AsString()] += p.Value
				}
			case metricdata.Gauge[float64]:
				if m.Name != "gopatrol.rule.repair_rate" {
					continue
				}
				for _, p := range d.DataPoints {
					rule, _ := p.Attributes.Value(metricdef.AttrRuleName)
					rates[rule.AsString()] = p.Value
				}
			}
		}
	}
	if counts["mend=held"] != 1 || counts["refuse=refused"] != 1 || len(counts) != 2 {
		t.Errorf("actions = %v, want mend held and refuse refused once each", counts)
	}
	if rates["mend"] != 1 || rates["refuse"] != 0 || len(rates) != 2 {
		t.Errorf("repair rates = %v, want mend 1 and refuse 0", rates)
	}
}
