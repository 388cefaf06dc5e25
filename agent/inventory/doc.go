// Package inventory keeps the Go environments that builds on this node
// really use, as the eBPF sensors see them (issue 17, docs/environments.md).
//
// When a go command starts, CaptureExec makes its environment from what
// the sensors streamed at its exec (its environment block, executable,
// working directory and namespace) and /proc of the process, or of its
// parent in the same mount namespace and cgroup once it is gone: the go
// binary and its GOROOT and version, the user, the Go-relevant
// variables of its environment (Variables, and nothing else: the values
// of other variables are skipped while scanning and never stored), the
// working directory's module root, and the container (mount namespace,
// cgroup, container.id, pod). Processes whose environments differ only in
// what the doctor does not look at (PIDs, other variables, the working
// directory inside one module) map to one Env whose ID is a digest of
// those fields, so the same environment seen again, or after a restart,
// has the same ID.
//
// The Inventory holds at most Limit environments, evicting the least
// recently seen, and a change log: an environment appeared, changed (a new
// ID in the same place: user, container and module) or disappeared (not
// seen for a while, or evicted). Patrol runs the doctor against one
// environment: as its user, with its variables, inside its container's
// root filesystem through /proc/PID/root of a process still living in its
// mount namespace. An environment with no such process left cannot be
// entered and is reported as unreachable, never as healthy.
//
// The agent writes the inventory to a state file (Save, Load), which
// `gopatrol agent status` lists and `gopatrol check --env ID` reads.
package inventory
