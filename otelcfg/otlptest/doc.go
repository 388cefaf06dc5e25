// Package otlptest is a real OTLP metrics receiver for tests: the
// collector's gRPC MetricsService and the HTTP /v1/metrics handler, on
// 127.0.0.1, optionally over TLS with a CA made in the test (NewCA).
//
// Tests of otelcfg, of `gopatrol check --export` and of the agent send to
// it exactly as they would to a collector, then read back what arrived
// (Points, Resource), or make it answer as a troubled collector would
// (PartialSuccess, Reject). Nothing leaves the machine.
package otlptest
