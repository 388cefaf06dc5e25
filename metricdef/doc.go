// Package metricdef is the one catalogue of every instrument gopatrol
// records: its name, kind, unit, description, attribute keys and histogram
// buckets, and Instruments, the catalogue created on a metric.Meter.
//
// The daemon (package agent), the doctor's --export (cmd/gopatrol through
// agent/record) and the docs test all read this package, so an instrument
// is defined once: docs/metrics.md lists the same entries in the same order
// and TestMetricsDocInStepWithCatalogue fails when the two differ. The
// documented attribute values that come from the sensors (the file classes
// of gopatrol.file.class) are tested against what package bpf emits.
//
// Names are gopatrol.*, in OpenTelemetry style (no _total), units UCUM,
// durations in seconds as histograms; attribute keys use the semantic
// conventions' names wherever one exists. The package imports only the
// OpenTelemetry API: it knows nothing of exporters (otelcfg), checks or
// sensors.
package metricdef
