package record_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/record"
	"github.com/gopatrol/gopatrol/metricdef"
	"github.com/gopatrol/gopatrol/plugins/host"
)

func TestHealthScore(t *testing.T) {
	tests := []struct {
		summary map[check.Status]int
		want    float64
		ok      bool
	}{
		{map[check.Status]int{check.Pass: 4}, 100, true},
		{map[check.Status]int{check.Pass: 2, check.Warn: 2}, 75, true},
		{map[check.Status]int{check.Pass: 1, check.Fail: 1, check.Error: 1, check.Warn: 1, check.Skip: 10}, 37.5, true},
		{map[check.Status]int{check.Skip: 3}, 0, false},
	}
	for _, tt := range tests {
		got, ok := record.HealthScore(tt.summary)
		if got != tt.want || ok != tt.ok {
			t.Errorf("HealthScore(%v) = %v, %v; want %v, %v", tt.summary, got, ok, tt.want, tt.ok)
		}
	}
}

// collect returns every metric recorded so far, by name.
func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m
		}
	}
	return got
}

func newRecorder(t *testing.T) (*record.Recorder, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	r, err := record.New(mp.Meter("record_test"))
	if err != nil {
		t.Fatal(err)
	}
	return r, reader
}

func gaugePoints(t *testing.T, m metricdata.Metrics) map[attribute.Distinct]int64 {
	t.Helper()
	g, ok := m.Data.(metricdata.Gauge[int64])
	if !ok {
		t.Fatalf("%s: %T, want an int64 gauge", m.Name, m.Data)
	}
	pts := map[attribute.Distinct]int64{}
	for _, p := range g.DataPoints {
		pts[p.Attributes.Equivalent()] = p.Value
	}
	return pts
}

// A recorder called twice keeps the latest state set: a check that went
// from pass to fail has pass back at 0.
func TestReportStateSet(t *testing.T) {
	r, reader := newRecorder(t)
	ctx := context.Background()
	res := func(s check.Status) []check.Result {
		return []check.Result{{ID: "go.binary", Status: s, Duration: 250 * time.Millisecond}}
	}
	r.Report(ctx, check.NewReport(nil, res(check.Pass)))
	// A kept proof did not run: a result, but no duration sample.
	kept := res(check.Pass)
	kept[0].ProvedAt, kept[0].Duration = time.Now(), 40*time.Millisecond
	r.Report(ctx, check.NewReport(nil, kept))
	r.Report(ctx, check.NewReport(nil, res(check.Fail)))

	got := collect(t, reader)
	pts := gaugePoints(t, got[metricdef.SpecCheckResult.Name])
	if len(pts) != len(check.Statuses) {
		t.Errorf("%d check.result points, want one per status (%d)", len(pts), len(check.Statuses))
	}
	for _, s := range check.Statuses {
		set := attribute.NewSet(metricdef.AttrCheckID.String("go.binary"), metricdef.AttrCheckStatus.String(string(s)))
		want := int64(0)
		if s == check.Fail {
			want = 1
		}
		if v, ok := pts[set.Equivalent()]; !ok || v != want {
			t.Errorf("check.result{%s} = %d (present %v), want %d", s, v, ok, want)
		}
	}
	score, ok := got[metricdef.SpecHealthScore.Name].Data.(metricdata.Gauge[float64])
	if !ok || len(score.DataPoints) != 1 || score.DataPoints[0].Value != 0 {
		t.Errorf("health.score = %+v, want one point of 0 after a failing run", got[metricdef.SpecHealthScore.Name].Data)
	}
	h, ok := got[metricdef.SpecCheckDuration.Name].Data.(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) != 2 {
		t.Fatalf("check.duration = %+v, want a point per status seen", got[metricdef.SpecCheckDuration.Name].Data)
	}
	for _, p := range h.DataPoints {
		if p.Count != 1 || p.Sum != 0.25 {
			t.Errorf("check.duration %v: count %d sum %v, want 1 and 0.25", p.Attributes, p.Count, p.Sum)
		}
	}
}

// Every run of only skipped checks records no health score.
func TestReportAllSkippedHasNoScore(t *testing.T) {
	r, reader := newRecorder(t)
	r.Report(context.Background(), check.NewReport(nil, []check.Result{{ID: "cgo.toolchain", Status: check.Skip}}))
	if m, ok := collect(t, reader)[metricdef.SpecHealthScore.Name]; ok {
		t.Errorf("health.score recorded with every check skipped: %+v", m.Data)
	}
}

func TestProbeStates(t *testing.T) {
	found := []host.Candidate{{Name: "loose", Err: errRefused}, {Name: "aws"}, {Name: "gcp"}, {Name: "azure"}, {Name: "alibaba"}}
	rep := host.Report{Results: []host.Result{
		{Plugin: "aws", Status: "detected", Attributes: map[string]string{"cloud.provider": "aws"}},
		{Plugin: "gcp", Status: "not_this_cloud", Reason: "no metadata server"},
		{Plugin: "azure", Status: "error", Reason: "exited with status 2"},
		{Plugin: "alibaba", Status: host.StatusStale, Reason: "restarting"},
	}}
	states := record.ProbeStates(found, rep)
	want := []record.ProbeState{
		{Plugin: "alibaba", Reason: "stale: restarting"},
		{Plugin: "aws", Up: true},
		{Plugin: "azure", Reason: "error: exited with status 2"},
		{Plugin: "gcp", Up: true},
		{Plugin: "loose", Reason: errRefused.Error()},
	}
	if len(states) != len(want) {
		t.Fatalf("states %+v\nwant   %+v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Errorf("state %d = %+v, want %+v", i, states[i], want[i])
		}
	}

	r, reader := newRecorder(t)
	r.Probes(context.Background(), states)
	pts := gaugePoints(t, collect(t, reader)[metricdef.SpecProbeUp.Name])
	for _, s := range want {
		set := attribute.NewSet(metricdef.AttrProbePlugin.String(s.Plugin))
		v, ok := pts[set.Equivalent()]
		if !ok || (v == 1) != s.Up {
			t.Errorf("probe.up{%s} = %d (present %v), want up=%v", s.Plugin, v, ok, s.Up)
		}
	}
}

var errRefused = refusedError("plugin loose: mode 0666: writable by others")

type refusedError string

func (e refusedError) Error() string { return string(e) }

// Once the rule engine gives the doctor group's score, a doctor run no
// longer overwrites it with its one-run score.
func TestScoreFromRulesWins(t *testing.T) {
	r, reader := newRecorder(t)
	ctx := context.Background()
	pass := check.NewReport(nil, []check.Result{{ID: "go.binary", Status: check.Pass}})
	score := func() float64 {
		t.Helper()
		g, ok := collect(t, reader)[metricdef.SpecHealthScore.Name].Data.(metricdata.Gauge[float64])
		if !ok || len(g.DataPoints) != 1 {
			t.Fatalf("health.score = %+v, want one point", g)
		}
		return g.DataPoints[0].Value
	}
	r.Report(ctx, pass)
	if got := score(); got != 100 {
		t.Errorf("one passing run: %v, want 100", got)
	}
	r.Score(ctx, 42.5)
	r.Report(ctx, pass)
	if got := score(); got != 42.5 {
		t.Errorf("after the rule engine's 42.5 and another run: %v, want 42.5", got)
	}
}
