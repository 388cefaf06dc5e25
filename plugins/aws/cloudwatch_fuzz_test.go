package aws

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// The SDK decodes GetMetricData's answer; what is ours is turning its
// results into points. Whatever values and ids the results hold (NaN,
// Inf, repeated or unknown ids, empty value lists, a second page), merge
// must not panic, must refuse a non-finite newest value, must keep the
// first result's newest value of each id, and cwPoints must only make
// finite points of the queries asked for, each with its unit, at now.
func FuzzGetMetricData(f *testing.F) {
	f.Add("pin", 1234.0, 99.0, uint8(2), "pout", 800.0, 42.5)
	f.Add("pin", math.NaN(), 1.0, uint8(1), "pin", 7.0, 8.0)
	f.Add("credit", math.Inf(1), 0.0, uint8(1), "credit", 1.0, 2.0)
	f.Add("pout", 7e3, 8.0, uint8(0), "pout", 9.0, -1.0)
	f.Add("", -0.0, 5e-324, uint8(2), "unknown", 1e308, math.Inf(-1))
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, id1 string, a, b float64, n uint8, id2 string, c, next float64) {
		page1 := []types.MetricDataResult{
			{Id: &id1, Values: []float64{a, b}[:n%3]},
			{Id: &id2, Values: []float64{c}},
			{Id: nil, Values: []float64{c}},
		}
		latest := map[string]float64{}
		if err := merge(page1, latest); err != nil {
			if !slices.ContainsFunc(page1, func(r types.MetricDataResult) bool { return len(r.Values) > 0 && !finite(r.Values[0]) }) {
				t.Fatalf("merge refused finite values: %v", err)
			}
			return
		}
		for id, v := range latest {
			if !finite(v) {
				t.Fatalf("%q accepted the non-finite %v", id, v)
			}
			i := slices.IndexFunc(page1, func(r types.MetricDataResult) bool {
				return (r.Id == nil && id == "" || r.Id != nil && *r.Id == id) && len(r.Values) > 0
			})
			if i < 0 || page1[i].Values[0] != v && !(v == 0 && page1[i].Values[0] == 0) {
				t.Fatalf("%q = %v, not the first value of its first result with values: %+v", id, v, page1)
			}
		}
		// A second page repeating the ids adds nothing: the first page's
		// values are the newest.
		before := map[string]float64{}
		for k, v := range latest {
			before[k] = v
		}
		page2 := []types.MetricDataResult{{Id: &id1, Values: []float64{next}}, {Id: &id2, Values: []float64{next}}}
		if err := merge(page2, latest); err == nil {
			for k, v := range before {
				if latest[k] != v {
					t.Fatalf("%q was overwritten by a later page: %v -> %v", k, v, latest[k])
				}
			}
		}
		for _, p := range cwPoints(latest, now) {
			if !finite(p.Value) || p.Unit == "" || p.TimeUnixNano != now.UnixNano() {
				t.Fatalf("point %+v: want finite, with a unit, at now", p)
			}
			if p.Name != metricPackets && p.Name != metricCreditBalance {
				t.Fatalf("point %+v of no query asked for", p)
			}
		}
	})
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
