package alibaba

import (
	"math"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// The SDK decodes DescribeMetricList's answer; its Datapoints field is
// untrusted JSON inside a JSON string, and decoding it is ours: whatever
// it holds, points and qpsPoints must not panic, and the points made from
// it name only the load balancers asked for, carry the newest datapoint's
// QPS and time, and are finite.
func FuzzDescribeMetricList(f *testing.F) {
	f.Add(`[{"timestamp":1764496800000,"instanceId":"lb-1","Average":120.5},{"timestamp":1764496740000,"instanceId":"lb-1","Average":100},{"timestamp":1764496800000,"instanceId":"lb-2","Average":3}]`, "lb-1")
	f.Add(`[{"timestamp":9223372036854775807,"instanceId":"lb-1","Average":1},{"timestamp":-9223372036854775808,"instanceId":"lb-1","Average":2}]`, "lb-1")
	f.Add(`[{"timestamp":2,"instanceId":"a","Average":1e308},{"timestamp":1,"instanceId":"a","Average":5e-324}]`, "a")
	f.Add(`[{"timestamp":2,"instanceId":"a","Average":-1}]`, "a")
	f.Add(`not json`, "x")
	f.Add(``, "")
	f.Fuzz(func(t *testing.T, body, asked string) {
		dps, err := points(body)
		if err != nil {
			return
		}
		series := map[string][]datapoint{}
		newest := map[string]int64{}
		for _, d := range dps {
			series[d.InstanceID] = append(series[d.InstanceID], d)
			newest[d.InstanceID] = max(newest[d.InstanceID], d.Timestamp)
		}
		ids := []string{asked, "lb-never-answered"}
		for _, p := range qpsPoints(ids, series) {
			id := p.Attributes[attrLB]
			if id != asked {
				t.Fatalf("point %+v for %q, which was not asked for (asked %q)", p, id, asked)
			}
			if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
				t.Fatalf("non-finite point %+v from %q", p, body)
			}
			if p.TimeUnixNano <= 0 || p.TimeUnixNano/1e6 != newest[id] {
				t.Fatalf("point %+v at %d ns, the newest datapoint of %s is at %d ms", p, p.TimeUnixNano, id, newest[id])
			}
			if p.Name == metricQPS && !newestHas(series[id], newest[id], p) {
				t.Fatalf("QPS %v of %s is not the Average of its newest datapoint (%d ms): %+v", p.Value, id, newest[id], series[id])
			}
		}
	})
}

func newestHas(s []datapoint, at int64, p sdk.Point) bool {
	for _, d := range s {
		if d.Timestamp == at && d.Average == p.Value {
			return true
		}
	}
	return false
}
