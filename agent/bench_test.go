package agent_test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rssKiB is the resident set of pid from /proc.
func rssKiB(b *testing.B, pid int) float64 {
	b.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		var kib float64
		if _, err := fmt.Sscanf(l, "VmRSS: %f kB", &kib); err == nil {
			return kib
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkAgentLifecycle starts the real agent with its sensors (when
// this machine can load them) and no collector, and reports start to
// ready (the first patrol included: /readyz waits for it), the resident
// set once ready, and SIGTERM to exit. Issue 11's budgets: ready in 2 s
// plus the probe deadline, 48 MiB, exit in 3 s (docs/agent.md).
func BenchmarkAgentLifecycle(b *testing.B) {
	cfg := strings.Replace(quietConfig, "enabled: false", "enabled: true", 1)
	var ready, exit time.Duration
	var rss float64
	for range b.N {
		start := time.Now()
		p := startAgent(b, agentOpts{config: cfg, env: []string{"OTEL_METRICS_EXPORTER=none"}})
		p.waitReady(b)
		ready += time.Since(start)
		rss = max(rss, rssKiB(b, p.cmd.Process.Pid))
		start = time.Now()
		if err := p.stop(b, syscall.SIGTERM, 30*time.Second); err != nil {
			b.Fatal(err)
		}
		exit += time.Since(start)
	}
	b.ReportMetric(ready.Seconds()/float64(b.N), "s-to-ready")
	b.ReportMetric(exit.Seconds()/float64(b.N), "s-sigterm-to-exit")
	b.ReportMetric(rss/1024, "MiB-rss")
}
