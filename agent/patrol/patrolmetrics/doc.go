// Package patrolmetrics records the patrol engine's evaluations on the
// catalogue's instruments (metricdef): per rule and label set the value,
// the breach state and the baseline band, so a Grafana board can draw the
// value inside its band; per rule the evaluation time and errors; per
// group the health score. It is the engine's Recorder; the engine itself
// knows no OpenTelemetry.
package patrolmetrics
