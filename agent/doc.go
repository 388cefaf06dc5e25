// Package agent is the gopatrol host agent: the daemon that joins the
// doctor (agent/check), the eBPF sensors (bpf, through agent/sense), the
// cloud probe plugins (plugins/host) and the OpenTelemetry export
// (otelcfg) on one node.
//
// Its life has two halves. Resolve reads the config file, the OTEL_*
// environment, the toolchain and the plugin directory without side
// effects, so that every mistake is one error before anything starts (the
// CLI turns it into exit 2). Run then starts the meter provider, the
// sensors, the plugins and the scheduler in that order, serves /healthz,
// /readyz, /status and /metrics, and on SIGTERM stops them in the reverse
// order with a bounded final flush. SIGHUP re-reads the config file; a new
// config that does not validate is logged and counted and the old one
// keeps running.
//
// The scheduler runs the doctor's default check set every few minutes and
// the full set once a day at a node-local time plus a per-node splay, never
// two patrols at once. Its clock is injectable so that tests drive it
// without sleeping.
package agent
