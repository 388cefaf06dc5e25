package probetest_test

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/plugins/host"
	"github.com/gopatrol/gopatrol/plugins/probetest"
	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// benchDetect measures what `gopatrol plugins detect` does with the five
// probes: discover and verify (sha256 of each binary), start them all with
// AutoMTLS, one parallel Detect, shut them down. It reports the median
// wall time per run (budget: 400 ms off-cloud, 150 ms on a loopback cloud).
func benchDetect(b *testing.B, env []string, want sdk.Status, budget time.Duration) {
	dir := probetest.Dir(b, built, all...)
	env = append(probetest.OffCloud(b), env...)
	var runs []time.Duration
	cpu0 := cpuTime()
	for b.Loop() {
		start := time.Now()
		h, err := host.Open(context.Background(), host.Config{Dir: dir, Env: env})
		if err != nil {
			b.Fatal(err)
		}
		r := h.Detect(context.Background())
		h.Close()
		runs = append(runs, time.Since(start))
		for _, res := range r.Results {
			if want == sdk.Detected && res.Plugin != "aws" && res.Plugin != "openshift" {
				continue
			}
			if res.Status != want {
				b.Fatalf("%s: %s (%s), want %s", res.Plugin, res.Status, res.Reason, want)
			}
		}
	}
	// CPU time (host and plugins) is what a loaded 2-core CI box turns
	// into wall time: report it next to the median.
	cpu := cpuTime() - cpu0
	slices.Sort(runs)
	median := runs[len(runs)/2]
	b.ReportMetric(float64(median.Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(runs)), "cpu-ms/op")
	if median > budget {
		b.Errorf("median %s, budget %s", median.Round(time.Millisecond), budget)
	}
}

// cpuTime is the user+system time of this process and its reaped children.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + kids.Utime.Nano() + kids.Stime.Nano())
}

// Off-cloud with the metadata ports refused (nothing listens).
func BenchmarkDetectOffCloud(b *testing.B) {
	benchDetect(b, nil, sdk.NotThisCloud, 400*time.Millisecond)
}

// Off-cloud with SYNs dropped: the worst case, bounded by the 150 ms dial.
func BenchmarkDetectOffCloudSilent(b *testing.B) {
	if !probetest.HaveSilent() {
		probetest.Skip(b, "no silent address (needs root, the network namespace and tun)")
	}
	benchDetect(b, silentEnv(), sdk.NotThisCloud, 400*time.Millisecond)
}

func BenchmarkDetectLoopbackCloud(b *testing.B) {
	benchDetect(b, onCloudEnv(b), sdk.Detected, 150*time.Millisecond)
}

// BenchmarkCollectCycle is one collection cycle of all five probes on a
// loopback cloud (EC2 with CloudWatch on, in an OpenShift cluster whose
// node has conditions) through a host that is already running: what the
// agent's collect loop does every interval. The budget is the agent's
// own CPU (the plugins are other processes): 10 ms per cycle.
func BenchmarkCollectCycle(b *testing.B) {
	cw := server(b, &cloudWatch{})
	env := append(onCloudEnv(b), "AWS_ENDPOINT_URL_CLOUDWATCH="+cw.URL, "GOPATROL_AWS_CLOUDWATCH_INTERVAL=1m",
		"AWS_ACCESS_KEY_ID=AKIDENV", "AWS_SECRET_ACCESS_KEY=env-secret")
	h := openHost(b, all, env)
	var self0, self1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
	n := 0
	for b.Loop() {
		for _, c := range h.Collect(context.Background(), nil) {
			if c.Err != nil {
				b.Fatalf("%s: %v", c.Plugin, c.Err)
			}
		}
		n++
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
	cpu := time.Duration(self1.Utime.Nano() + self1.Stime.Nano() - self0.Utime.Nano() - self0.Stime.Nano())
	perOp := cpu / time.Duration(n)
	b.ReportMetric(float64(perOp.Microseconds())/1000, "agent-cpu-ms/op")
	if perOp > 10*time.Millisecond {
		b.Errorf("agent CPU %s per collection cycle, budget 10ms", perOp)
	}
}
