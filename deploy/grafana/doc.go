// Package grafana generates deploy/grafana/gopatrol-health.json, the
// "health score" board of chapter 5, with the Grafana Foundation SDK
// (pinned in this module's go.mod): the health score per service and node
// on 0–100, check statuses per node, rule values inside their EWMA bands,
// toolchain activity, file-access failures by class and errno, TLS
// failures by server, lost events and probes up, with variables for
// cloud.provider, cloud.region, cloud.availability_zone and k8s.node.name.
//
// Every query is made from a metricdef.Spec, never from a string, and its
// Prometheus name comes from running the OpenTelemetry Prometheus exporter
// on the catalogue (PromNames), so the board names exactly what the agent
// exports. The board's test fails when the committed JSON differs from
// what Board builds (`make generate` rewrites it) and when a query names a
// metric or a label the catalogue does not define.
//
// It is a module of its own so that the SDK stays out of gopatrol's
// module graph, as deploy/kubernetes keeps kustomize out.
package grafana

//go:generate go run ./gen -o gopatrol-health.json
