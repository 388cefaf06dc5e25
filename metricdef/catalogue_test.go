package metricdef

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Every instrument of Instruments is in the catalogue and the other way
// round, with the catalogue's name, unit, description, kind and buckets.
func TestInstrumentsMatchCatalogue(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	in, err := NewInstruments(mp.Meter("metricdef_test"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in.CheckResult.Record(ctx, 1)
	in.CheckDuration.Record(ctx, 1)
	in.HealthScore.Record(ctx, 1)
	in.ToolchainExecs.Add(ctx, 1)
	in.ToolchainInvocationDuration.Record(ctx, 1)
	in.FileAccessFailures.Add(ctx, 1)
	in.Connects.Add(ctx, 1)
	in.TLSHandshakes.Add(ctx, 1)
	in.TLSHandshakeDuration.Record(ctx, 1)
	in.SensorLostEvents.Add(ctx, 1)
	in.SensorProgramRunTime.Add(ctx, 1)
	in.BuildCriticalPath.Record(ctx, 1)
	in.BuildTreesOverflow.Add(ctx, 1)
	in.ProbeUp.Record(ctx, 1)
	in.RuleValue.Record(ctx, 1)
	in.RuleState.Record(ctx, 1)
	in.RuleBaselineMean.Record(ctx, 1)
	in.RuleBaselineLower.Record(ctx, 1)
	in.RuleBaselineUpper.Record(ctx, 1)
	in.RuleEvaluationDuration.Record(ctx, 1)
	in.RuleEvaluationErrors.Add(ctx, 1)
	in.RuleActions.Add(ctx, 1)
	in.RuleRepairRate.Record(ctx, 1)
	in.GroupScore.Record(ctx, 1)
	in.AgentExportFailures.Add(ctx, 1)
	in.AgentReloads.Add(ctx, 1)
	in.AgentPatrolsSkipped.Add(ctx, 1)
	for _, g := range in.Cloud {
		g.Record(ctx, 1)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m
		}
	}
	if len(got) != len(Catalogue) {
		t.Errorf("Instruments records %d metrics, the catalogue has %d", len(got), len(Catalogue))
	}
	for _, s := range Catalogue {
		m, ok := got[s.Name]
		if !ok {
			t.Errorf("%s: in the catalogue, not in Instruments", s.Name)
			continue
		}
		if m.Unit != s.Unit || m.Description != s.Description {
			t.Errorf("%s: unit %q description %q, catalogue %q %q", s.Name, m.Unit, m.Description, s.Unit, s.Description)
		}
		var kind string
		switch d := m.Data.(type) {
		case metricdata.Gauge[int64], metricdata.Gauge[float64]:
			kind = KindGauge
		case metricdata.Sum[int64]:
			if d.IsMonotonic {
				kind = KindCounter
			}
		case metricdata.Sum[float64]:
			if d.IsMonotonic {
				kind = KindCounter
			}
		case metricdata.Histogram[float64]:
			kind = KindHistogram
			if b := d.DataPoints[0].Bounds; len(b) != len(s.Buckets) {
				t.Errorf("%s: %d buckets, catalogue %d", s.Name, len(b), len(s.Buckets))
			}
		}
		if kind != s.Kind {
			t.Errorf("%s: recorded as %T, catalogue says %s", s.Name, m.Data, s.Kind)
		}
	}
}

// The catalogue follows DESIGN.md's naming rules.
func TestCatalogueNaming(t *testing.T) {
	name := regexp.MustCompile(`^gopatrol(\.[a-z][a-z0-9_]*)+$`)
	seen := map[string]bool{}
	for _, s := range Catalogue {
		if !name.MatchString(s.Name) || strings.HasSuffix(s.Name, "_total") || strings.HasSuffix(s.Name, ".total") {
			t.Errorf("%s: not a gopatrol.* name in OTel style", s.Name)
		}
		if seen[s.Name] {
			t.Errorf("%s: twice in the catalogue", s.Name)
		}
		seen[s.Name] = true
		if s.Kind == KindHistogram && s.Unit != "s" {
			t.Errorf("%s: histograms here are durations in seconds, unit %q", s.Name, s.Unit)
		}
		if strings.HasSuffix(s.Name, ".duration") && (s.Kind != KindHistogram || s.Unit != "s") {
			t.Errorf("%s: a duration is a histogram in s", s.Name)
		}
		if s.Description == "" || s.Unit == "" {
			t.Errorf("%s: no unit or description", s.Name)
		}
	}
}

// docs/metrics.md has one table row per instrument, in catalogue order:
// | `name` | kind | `unit` | `attr`, `attr` | description |
func TestMetricsDocInStepWithCatalogue(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(gopatrol\\.[^`]+)` \\| ([A-Za-z]+) \\| `([^`]+)` \\| ([^|]*) \\| ([^|]+) \\|$")
	rows := row.FindAllStringSubmatch(string(doc), -1)
	if len(rows) != len(Catalogue) {
		t.Errorf("docs/metrics.md has %d instrument rows, the catalogue %d", len(rows), len(Catalogue))
	}
	for i, s := range Catalogue {
		if i >= len(rows) {
			t.Errorf("%s: not in docs/metrics.md", s.Name)
			continue
		}
		r := rows[i]
		if r[1] != s.Name {
			t.Errorf("row %d documents %s, catalogue has %s there", i+1, r[1], s.Name)
			continue
		}
		if r[2] != s.Kind || r[3] != s.Unit {
			t.Errorf("%s: docs say %s in %q, catalogue %s in %q", s.Name, r[2], r[3], s.Kind, s.Unit)
		}
		var keys []string
		for _, k := range s.Attributes {
			keys = append(keys, "`"+string(k)+"`")
		}
		want := strings.Join(keys, ", ")
		if want == "" {
			want = "none"
		}
		if strings.TrimSpace(r[4]) != want {
			t.Errorf("%s: docs attributes %q, catalogue %q", s.Name, strings.TrimSpace(r[4]), want)
		}
		if strings.TrimSpace(r[5]) != s.Description {
			t.Errorf("%s: docs description %q, catalogue %q", s.Name, strings.TrimSpace(r[5]), s.Description)
		}
	}
}
