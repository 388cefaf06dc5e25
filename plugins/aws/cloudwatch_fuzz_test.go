package aws

import (
	"encoding/xml"
	"math"
	"strconv"
	"strings"
	"testing"
)

// A GetMetricData answer is untrusted XML: whatever it holds, decoding it
// as cwCall does and merging it as cloudWatch does must not panic, and
// what it accepts is a finite number taken from the first result of its
// query that has values.
func FuzzGetMetricData(f *testing.F) {
	f.Add(`<GetMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><GetMetricDataResult><MetricDataResults><member><Id>pin</Id><Label>NetworkPacketsIn</Label><StatusCode>Complete</StatusCode><Timestamps><member>2026-11-30T10:00:00Z</member></Timestamps><Values><member>1234.0</member><member>99</member></Values></member><member><Id>credit</Id><Values/></member></MetricDataResults><NextToken>tok-2</NextToken></GetMetricDataResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetMetricDataResponse>`)
	f.Add(`<GetMetricDataResponse><GetMetricDataResult><MetricDataResults><member><Id>pout</Id><Values><member> 7e3 </member></Values></member><member><Id>pout</Id><Values><member>8</member></Values></member></MetricDataResults></GetMetricDataResult></GetMetricDataResponse>`)
	f.Add(`<GetMetricDataResponse><GetMetricDataResult><MetricDataResults><member><Id>pin</Id><Values><member>NaN</member></Values></member></MetricDataResults></GetMetricDataResult></GetMetricDataResponse>`)
	f.Add(`<GetMetricDataResponse><GetMetricDataResult><MetricDataResults><member><Id>pin</Id><Values><member>+Inf</member></Values></member></MetricDataResults></GetMetricDataResult></GetMetricDataResponse>`)
	f.Add(`<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>`)
	f.Add(`<a><b>`)
	f.Fuzz(func(t *testing.T, body string) {
		var res getMetricDataResult
		if err := xml.Unmarshal([]byte(body), &res); err != nil {
			return
		}
		latest := map[string]float64{}
		next, err := res.merge(latest)
		if err != nil {
			return
		}
		if next != strings.TrimSpace(next) {
			t.Fatalf("NextToken %q kept its spaces", next)
		}
		for id, v := range latest {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("%s accepted the non-finite %v from %q", id, v, body)
			}
			// The first result of id with values is the one taken.
			for _, r := range res.Results {
				if r.ID != id || len(r.Values) == 0 {
					continue
				}
				want, err := strconv.ParseFloat(strings.TrimSpace(r.Values[0]), 64)
				if err != nil || want != v {
					t.Fatalf("%s = %v, but its first result's first value is %q", id, v, r.Values[0])
				}
				break
			}
		}
		// A second page repeating the first adds nothing: the first page's
		// values are the newest.
		again := map[string]float64{}
		for k, v := range latest {
			again[k] = v + 1
		}
		if _, err := res.merge(again); err != nil {
			t.Fatalf("a page accepted once is refused when its queries are already seen: %v", err)
		}
		for k, v := range latest {
			if again[k] != v+1 {
				t.Fatalf("%s was overwritten by a later page", k)
			}
		}
	})
}
