package sense_test

import (
	"context"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gopatrol/gopatrol/agent/sense"
	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/bpf/tlsprobe"
	"github.com/gopatrol/gopatrol/metricdef"
)

func TestSubcommand(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"go", "build", "./..."}, "build"},
		{[]string{"/usr/local/go/bin/go", "-C", "x", "test"}, "other"}, // -C takes a value: x is read as the subcommand, and bounded
		{[]string{"go", "-x", "mod", "download"}, "mod"},
		{[]string{"go"}, "unknown"},
		{nil, "unknown"},
		{[]string{"go", "/tmp/secret-path"}, "other"},
	}
	for _, tt := range tests {
		if got := sense.Subcommand(tt.args); got != tt.want {
			t.Errorf("Subcommand(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestConnectResult(t *testing.T) {
	for errno, want := range map[syscall.Errno]string{0: "ok", syscall.ECONNREFUSED: "refused", syscall.ETIMEDOUT: "timeout",
		syscall.ENETUNREACH: "unreachable", syscall.ECONNABORTED: "other"} {
		if got := sense.ConnectResult(errno); got != want {
			t.Errorf("ConnectResult(%v) = %s, want %s", errno, got, want)
		}
	}
}

type points map[string]map[attribute.Distinct]float64

func collect(t *testing.T, r *sdkmetric.ManualReader) points {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := points{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			pts := map[attribute.Distinct]float64{}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					pts[p.Attributes.Equivalent()] = float64(p.Value)
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					pts[p.Attributes.Equivalent()] = p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					pts[p.Attributes.Equivalent()] = float64(p.Count)
				}
			}
			out[m.Name] = pts
		}
	}
	return out
}

func (p points) get(name string, kv ...attribute.KeyValue) float64 {
	set := attribute.NewSet(kv...)
	return p[name][set.Equivalent()]
}

func newAggregator(t *testing.T, opts ...sdkmetric.Option) (*sense.Aggregator, *sdkmetric.ManualReader) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(append(opts, sdkmetric.WithReader(reader))...)
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	in, err := metricdef.NewInstruments(mp.Meter("sense_test"))
	if err != nil {
		t.Fatal(err)
	}
	return sense.New(in, nil), reader
}

func TestAggregatorTree(t *testing.T) {
	a, reader := newAggregator(t)
	ctx := context.Background()
	root := bpf.Header{PID: 100, RootPID: 100}
	child := func(pid uint32) bpf.Header { return bpf.Header{PID: pid, RootPID: 100} }
	events := make(chan bpf.Event, 16)
	for _, ev := range []bpf.Event{
		&bpf.ExecEvent{Header: root, Filename: "/usr/local/go/bin/go", Args: []string{"go", "build", "-o", "/tmp/x", "."}},
		&bpf.ExecEvent{Header: child(101), Filename: "/usr/local/go/pkg/tool/linux_amd64/compile", Args: []string{"compile", "-p", "main"}},
		&bpf.ExecEvent{Header: child(102), Filename: "/usr/local/go/pkg/tool/linux_amd64/compile"},
		&bpf.ExecEvent{Header: child(103), Filename: "/usr/local/go/pkg/tool/linux_amd64/link"},
		&bpf.ExitEvent{Header: child(101), Duration: time.Second},
		&bpf.ConnectEvent{Header: child(104), Addr: netip.MustParseAddrPort("127.0.0.1:443"), Errno: syscall.ECONNREFUSED},
		&tlsprobe.Handshake{Header: child(104), Outcome: tlsprobe.OutcomeFailed, ErrorType: "unknown_ca", ServerName: "proxy.internal", Duration: 3 * time.Millisecond},
		&bpf.ExitEvent{Header: root, Duration: 2 * time.Second},
	} {
		events <- ev
	}
	close(events)
	a.Run(ctx, events)
	a.Counters(ctx, bpf.Stats{
		FileFailures: []bpf.FailureCount{{Class: bpf.ClassGOCACHE, Errno: syscall.EACCES, Count: 5}},
		Drops:        map[bpf.EventType]uint64{bpf.TypeExec: 2},
	})
	// Counters adds only what grew.
	a.Counters(ctx, bpf.Stats{
		FileFailures: []bpf.FailureCount{{Class: bpf.ClassGOCACHE, Errno: syscall.EACCES, Count: 7}},
		Drops:        map[bpf.EventType]uint64{bpf.TypeExec: 2},
	})
	p := collect(t, reader)
	exe := metricdef.AttrExecutableName
	for _, c := range []struct {
		got, want float64
		what      string
	}{
		{p.get(metricdef.SpecToolchainExecs.Name, exe.String("go")), 1, "execs go"},
		{p.get(metricdef.SpecToolchainExecs.Name, exe.String("compile")), 2, "execs compile"},
		{p.get(metricdef.SpecToolchainExecs.Name, exe.String("link")), 1, "execs link"},
		{p.get(metricdef.SpecToolchainInvocationDuration.Name, metricdef.AttrGoSubcommand.String("build")), 1, "invocations of build"},
		{p.get(metricdef.SpecConnects.Name, metricdef.AttrConnectResult.String("refused"), metricdef.AttrServerAddress.String("127.0.0.1"), metricdef.AttrServerPort.Int(443)), 1, "refused connects"},
		{p.get(metricdef.SpecTLSHandshakes.Name, metricdef.AttrTLSOutcome.String("failed"), metricdef.AttrErrorType.String("unknown_ca"), metricdef.AttrServerAddress.String("proxy.internal")), 1, "failed handshakes"},
		{p.get(metricdef.SpecFileAccessFailures.Name, metricdef.AttrFileClass.String("gocache"), metricdef.AttrErrorType.String("EACCES")), 7, "GOCACHE EACCES"},
		{p.get(metricdef.SpecSensorLostEvents.Name, metricdef.AttrSensorProgram.String("exec")), 2, "lost exec events"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	s := a.Snapshot()
	if s.LiveTrees != 0 || s.Trees != 1 || s.Execs != 4 {
		t.Errorf("snapshot %+v: want 0 live trees, 1 completed, 4 execs", s)
	}
}

// A server address is open-ended: the SDK's cardinality limit, not the
// aggregator, bounds it, and the overflow is folded, not lost.
func TestServerAddressesBoundedBySDKLimit(t *testing.T) {
	const limit = 10
	a, reader := newAggregator(t, sdkmetric.WithCardinalityLimit(limit))
	ctx := context.Background()
	for i := range 50 {
		a.Event(ctx, &bpf.ConnectEvent{Header: bpf.Header{PID: 2, RootPID: 1}, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 443)})
	}
	pts := collect(t, reader)[metricdef.SpecConnects.Name]
	if len(pts) > limit {
		t.Errorf("%d attribute sets, limit %d", len(pts), limit)
	}
	var total float64
	for _, v := range pts {
		total += v
	}
	if total != 50 {
		t.Errorf("connects total %v, want 50 (overflow folded, not dropped)", total)
	}
	overflow := attribute.NewSet(attribute.Bool("otel.metric.overflow", true))
	if v := pts[overflow.Equivalent()]; v == 0 {
		t.Error("no otel.metric.overflow series")
	}
}
