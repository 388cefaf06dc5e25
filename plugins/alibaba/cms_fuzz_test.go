package alibaba

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// A DescribeMetricList answer is untrusted JSON holding more JSON in a
// string: whatever it holds, decoding it as cmsCall and slbQPS do must not
// panic, and the points made from it name only the load balancers asked
// for, carry the newest datapoint's QPS and time, and are finite.
func FuzzDescribeMetricList(f *testing.F) {
	f.Add(`{"RequestId":"r","Success":true,"Code":"200","Period":"60","Datapoints":"[{\"timestamp\":1764496800000,\"instanceId\":\"lb-1\",\"Average\":120.5},{\"timestamp\":1764496740000,\"instanceId\":\"lb-1\",\"Average\":100},{\"timestamp\":1764496800000,\"instanceId\":\"lb-2\",\"Average\":3}]","NextToken":"n2"}`, "lb-1")
	f.Add(`{"Success":true,"Datapoints":"[{\"timestamp\":9223372036854775807,\"instanceId\":\"lb-1\",\"Average\":1},{\"timestamp\":-9223372036854775808,\"instanceId\":\"lb-1\",\"Average\":2}]"}`, "lb-1")
	f.Add(`{"Success":true,"Datapoints":"[{\"timestamp\":2,\"instanceId\":\"a\",\"Average\":1e308},{\"timestamp\":1,\"instanceId\":\"a\",\"Average\":5e-324}]"}`, "a")
	f.Add(`{"Code":"Throttling.User","Message":"Request was denied due to user flow control.","Success":false}`, "lb-1")
	f.Add(`{"Datapoints":"not json"}`, "x")
	f.Add(`[]`, "")
	f.Fuzz(func(t *testing.T, body, asked string) {
		var res cmsResult
		if err := json.Unmarshal([]byte(body), &res); err != nil {
			return
		}
		dps, err := res.points()
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
