// Package collector holds no code: its test checks deploy/collector's
// OpenTelemetry Collector configuration with a real Collector.
//
// builder.yaml is the OpenTelemetry Collector Builder (ocb) manifest of the
// smallest Collector that runs config.yaml. The test installs ocb at the
// pinned version, builds that Collector once into the user's cache
// (~/.cache/gopatrol/otelcol-<version>-<manifest hash>, outside the
// repository; `make collector` warms it), runs `otelcol validate` on
// config.yaml, then starts it on loopback as config.yaml stands (only the
// listen addresses, batch timeout and plaintext to the loopback backend set by an overlay file, the backends by the
// command line) and has `gopatrol check --export` send to it: the metrics
// must reach a loopback OTLP backend through the otlp exporter, and
// Prometheus remote write through the prometheusremotewrite exporter.
package collector
