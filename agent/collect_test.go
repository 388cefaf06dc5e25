package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gopatrol/gopatrol/metricdef"
	"github.com/gopatrol/gopatrol/plugins/host"
)

// The collector through a real host and the example plugin: points land
// on the catalogue's gauge with the plugin's name, each probe only on its
// interval, and a failed collection is logged, not recorded.
func TestCollectorThroughHost(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "gopatrol-probe-example"), "../plugins/example").CombinedOutput(); err != nil {
		t.Fatalf("build the example plugin: %v\n%s", err, out)
	}
	if err := host.WriteManifest(dir); err != nil {
		t.Fatal(err)
	}
	drops := filepath.Join(t.TempDir(), "drops")
	h, err := host.Open(context.Background(), host.Config{Dir: dir, Env: []string{"EXAMPLE_CLOUD_DROPS_FILE=" + drops}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	in, err := metricdef.NewInstruments(mp.Meter("collect_test"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		logs []string
	)
	warn := func(msg string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, msg)
	}
	c := newCollector(CollectConfig{Every: time.Hour, Probes: map[string]time.Duration{"example": time.Minute}}, h, in.Cloud, realClock{}, warn)
	value := func() float64 {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != metricdef.SpecCloudAllowanceExceeded.Name {
					continue
				}
				for _, dp := range m.Data.(metricdata.Gauge[float64]).DataPoints {
					want := attribute.NewSet(metricdef.AttrProbePlugin.String("example"), metricdef.AttrCloudAllowance.String("pps"))
					if dp.Attributes.Equals(&want) {
						return dp.Value
					}
					t.Errorf("point with attributes %v", dp.Attributes.ToSlice())
				}
			}
		}
		return -1
	}
	t0 := time.Now()
	os.WriteFile(drops, []byte("17"), 0o644)
	if next := c.cycle(context.Background(), t0); !next.Equal(t0.Add(time.Minute)) {
		t.Errorf("next cycle at %v, want a minute later", next.Sub(t0))
	}
	if v := value(); v != 17 {
		t.Fatalf("gauge = %v, want 17", v)
	}
	os.WriteFile(drops, []byte("20"), 0o644)
	c.cycle(context.Background(), t0.Add(30*time.Second)) // not due
	if v := value(); v != 17 {
		t.Errorf("gauge after a cycle before the interval = %v, want 17 (not asked)", v)
	}
	c.cycle(context.Background(), t0.Add(time.Minute))
	if v := value(); v != 20 {
		t.Errorf("gauge after the interval = %v, want 20", v)
	}
	os.Remove(drops)
	c.cycle(context.Background(), t0.Add(2*time.Minute))
	mu.Lock()
	defer mu.Unlock()
	if len(logs) != 1 || !strings.Contains(logs[0], "collection failed") {
		t.Errorf("logs %v, want one failed collection", logs)
	}
}

func TestCollectConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg     CollectConfig
		wantKey string
	}{
		{CollectConfig{Every: time.Minute}, ""},
		{CollectConfig{}, ""},
		{CollectConfig{Every: time.Minute, Probes: map[string]time.Duration{"aws": 0, "alibaba": 5 * time.Minute}}, ""},
		{CollectConfig{Every: time.Second}, "collect.every"},
		{CollectConfig{Every: time.Minute, Probes: map[string]time.Duration{"aws": time.Second}}, "collect.probes.aws"},
	} {
		err := tc.cfg.validate("agent.yaml")
		if tc.wantKey == "" && err != nil || tc.wantKey != "" && (err == nil || !strings.Contains(err.Error(), tc.wantKey)) {
			t.Errorf("%+v: %v, want key %q", tc.cfg, err, tc.wantKey)
		}
	}
	// Through the file: the key and what it allows.
	path := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(path, []byte("collect:\n  every: 1s\n"), 0o644)
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "collect.every: 1s: want 0 (off) or a duration of at least 10s") {
		t.Errorf("Load: %v", err)
	}
	os.WriteFile(path, []byte("collect:\n  probes:\n    aws: 10m\n"), 0o644)
	if cfg, err := Load(path, nil); err != nil || cfg.Collect.every("aws") != 10*time.Minute || cfg.Collect.every("gcp") != time.Minute {
		t.Errorf("Load: %+v, %v", cfg.Collect, err)
	}
}
