// Package preflight says, before the agent starts, whether this node can
// host it and what a missing part costs.
//
// It inspects what the sensors and the checks need: the capabilities held
// (CAP_BPF and CAP_PERFMON for the sensors, CAP_SYS_CHROOT for checks run
// against a host root mounted elsewhere, CAP_SETUID and CAP_SETGID for
// checks.as_user), kernel BTF, the uprobe PMU and whether a uprobe really
// attaches with the capabilities held (some kernels keep the perf_uprobe
// PMU to CAP_SYS_ADMIN even when CAP_PERFMON is held: ProbeUprobe attaches
// a program that only returns to a function of this very binary, for every
// process as the sensors do, and detaches it at once), lockdown mode,
// perf_event_paranoid, the memlock limit, tracefs, the host root mount and
// the state directory. Each finding is an Item: ok or not, required or
// not, what was seen, what to do, and what stays off without it.
//
// A missing required part (the host root, the state directory, the
// chroot capability, and the sensors' parts when sensors.require is set)
// makes the report not OK: `gopatrol preflight` exits 1, and the
// DaemonSet's init container with it, so that a node that cannot host the
// agent says why in `kubectl logs`. A missing optional part leaves the
// agent degraded, as it runs without the sensors.
//
// The kernel's files are read under Options.Proc and Options.Sys so that
// the tests can put real files of their own there; the capability set is
// always this process's own (bpf/feature).
package preflight
