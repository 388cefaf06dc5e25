// Package otelcfg turns configuration and the standard OTEL_* environment
// into what gopatrol exports with: the resource that labels every metric
// (service.*, host.*, os.type, k8s.* from the Downward API, cloud.* from
// detectors such as the probe plugins) and a Provider, a MeterProvider with
// its exporters (OTLP over gRPC or HTTP, Prometheus, console).
//
// The flow is always the same, for the doctor's `check --export` and for
// the agent: FromEnv (or a Config from the agent's file), then NewResource,
// then New; record through Provider.Meter; end with Shutdown, which flushes
// within the OTLP timeout and returns what did not arrive as an
// *ExportError naming the endpoint.
//
// The OTLP exporters of the Go SDK read OTEL_* themselves but silently
// ignore values they cannot parse; FromEnv validates every variable first so
// that a typo is an error naming the variable, not metrics quietly sent
// elsewhere. Errors the SDK reports asynchronously go through one
// otel.ErrorHandler, logged with slog and returned by the next flush.
//
// The instruments themselves (names, units, attribute keys) are not here:
// they are the catalogue in package metricdef, and agent/record maps
// reports onto them.
package otelcfg
