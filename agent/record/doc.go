// Package record maps what the agent learns onto the instruments of the
// metric catalogue (package metricdef): a check report becomes
// gopatrol.check.result, gopatrol.check.duration and gopatrol.health.score;
// the probe plugins' answers become gopatrol.probe.up and the cloud.*
// resource attributes.
//
// Both the doctor's `check --export` and the daemon call it, so the two
// export the same series for the same world. A Recorder is created once
// from a metric.Meter and may be called for every patrol cycle; it keeps no
// state between calls (gauges hold the latest value, which is what a state
// set of check statuses needs).
//
// The package knows no exporter and no provider: those are otelcfg's. It is
// also the one place where a probe's answer is judged up or down, so the
// CLI's stderr and the exported gauge never disagree.
package record
