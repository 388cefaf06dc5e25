// Command gopatrol keeps Go toolchains healthy: `gopatrol check` is a doctor
// for one machine; `trace` watches the toolchain at work through eBPF;
// `plugins` lists and runs the cloud probe plugins.
//
// This package holds only what makes a command line: flags, output
// formats, exit codes and their documentation. Everything the daemon needs
// too lives in the package that owns the job: the checks in agent/check,
// the recording of reports and probe states in agent/record, the sensor's
// file classes in agent/fileclass, loggers in agent/logging, exporters and
// the resource in otelcfg, the instrument catalogue in metricdef.
//
// Exit codes are documented in docs/checks.md and in each command's help.
package main
