package record

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/gopatrol/gopatrol/metricdef"
	"github.com/gopatrol/gopatrol/plugins/host"
	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// ProbeState is whether one probe plugin answered, and if not why.
type ProbeState struct {
	Plugin string
	Up     bool
	// Reason says why a probe is down: refused by the host's checks,
	// failed to start, an error answer or a stale one.
	Reason string
}

// ProbeStates judges every plugin of a directory: those the host refused
// (permissions, checksums) are down with the refusal; the others are up
// when their last detection answered, either way (detected or not this
// cloud), and down when it failed or only stale attributes stood in.
func ProbeStates(found []host.Candidate, rep host.Report) []ProbeState {
	var states []ProbeState
	for _, c := range found {
		if !c.Verified() {
			states = append(states, ProbeState{Plugin: c.Name, Reason: c.Err.Error()})
		}
	}
	for _, res := range rep.Results {
		s := ProbeState{Plugin: res.Plugin, Up: answered(res)}
		if !s.Up {
			s.Reason = fmt.Sprintf("%s: %s", res.Status, res.Reason)
		}
		states = append(states, s)
	}
	slices.SortStableFunc(states, func(a, b ProbeState) int { return strings.Compare(a.Plugin, b.Plugin) })
	return states
}

// answered is the one comparison of a probe's status in this package;
// string() on both sides holds whether host.Result.Status is a string or
// the SDK's typed status.
func answered(res host.Result) bool {
	st := string(res.Status)
	return st == string(sdk.Detected) || st == string(sdk.NotThisCloud)
}

// Probes records gopatrol.probe.up for every state: 1 up, 0 down.
func (r *Recorder) Probes(ctx context.Context, states []ProbeState) {
	for _, s := range states {
		v := int64(0)
		if s.Up {
			v = 1
		}
		r.in.ProbeUp.Record(ctx, v, metric.WithAttributes(metricdef.AttrProbePlugin.String(s.Plugin)))
	}
}

// ProbeAttributes are the merged cloud.* attributes of a detection, as
// resource attributes in key order. The mapping lives here, not in
// plugins/host, so that the plugin host knows nothing of OpenTelemetry.
func ProbeAttributes(rep host.Report) []attribute.KeyValue {
	kv := make([]attribute.KeyValue, 0, len(rep.Attributes))
	for _, k := range slices.Sorted(maps.Keys(rep.Attributes)) {
		kv = append(kv, attribute.String(k, rep.Attributes[k]))
	}
	return kv
}
