// Package sense turns the eBPF sensors' events into per-tree aggregates
// recorded on the metric catalogue's instruments (package metricdef).
//
// A Go process tree starts with the exec of a go command and ends with its
// exit; the Aggregator keeps one small entry per live tree (its
// subcommand and counts, for /status) and records:
//
//   - gopatrol.toolchain.execs by process.executable.name (the exec'd
//     file's base name),
//   - gopatrol.toolchain.invocation.duration by go subcommand, when the
//     tree's go command exits,
//   - gopatrol.connects by result and server, gopatrol.tls.handshakes and
//     their durations by outcome, error type and server,
//   - and, from the kernel's exact counters (Counters), file-access
//     failures by class and errno, lost events and program run time.
//
// Attribute values are bounded by construction where the set is known
// (subcommands, results, classes, errnos) and by the SDK's cardinality
// limit where it is not (server addresses, executable names): the meter
// provider is built with sdk/metric.WithCardinalityLimit, and overflowing
// sets fold into the SDK's otel.metric.overflow series. No PID, path or
// argument ever becomes an attribute value.
package sense
