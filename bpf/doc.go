// Package bpf loads gopatrol's eBPF sensors and turns what they see into
// typed events: the Go toolchain at work, observed from the kernel.
//
// # What is observed
//
// Only processes in a Go toolchain tree: a process whose executable name is
// one of Config.GoNames ("go") and all of its descendants, tracked in the
// kernel through fork, exec and exit (map gp_tree). For every other process
// each program returns at its first check. The events are
//
//   - *ExecEvent, *ExitEvent: the tree's processes, with argv, uid, cgroup,
//     exit status and duration;
//   - *EnvEvent: a go command's environment as it started (with
//     Config.Environ), so that one gone within milliseconds is still known;
//   - *FileFailureEvent: a file access that failed with EACCES, EPERM or
//     EROFS, classified in the kernel by the toolchain directory it falls
//     under (Class: goroot, gomodcache, gocache, ...); all failures are
//     counted, the first few of each (class, errno) streamed with the path;
//   - *ConnectEvent: the outcome of a TCP connect, read from the socket's
//     state changes;
//   - whatever add-on probe sets register (bpf/tlsprobe: TLS handshakes).
//
// # Why nothing sits on the syscall path
//
// Attaching any program to the sys_exit tracepoint makes every task on the
// machine take the kernel's syscall tracing slow path (about 115 ns per
// syscall here), in a tree or not. So file failures come from the failing
// Go binary itself: a uprobe on the error branch of its raw syscall
// function (ResolveGoTool, found by bpf/goasm), placed in the go command,
// its GOROOT tools, and any toolchain binary first seen executing in a
// tree. Config.Syscalls trades that cost for coverage of C programs too.
// The connect hook and the TLS socket hook are attached only while a tree
// is alive (scope.go), so a machine that is not building pays nothing for
// them. docs/sensors.md and docs/benchmarks.md have the measured costs.
//
// # Shape
//
// Open checks privileges and kernel features (bpf/feature), loads the
// CO-RE object compiled from c/sensor.bpf.c (committed, rebuilt by `make
// generate`; TestObjectsFresh checks it is not stale), attaches it and
// reads the ring buffer into Events until Close. Records are decoded by
// Decode at offsets that TestLayoutsMatchObject checks against the
// object's BTF. Add-on probe sets share the sensor's process tree and ring
// buffer through ShareMaps, AddExtension and RegisterDecoder. Stats reports
// drops, per-class failure counts and, when enabled, the programs' run time.
//
// x86-64 only: the programs read x86-64 registers and syscall numbers. On
// other architectures the package compiles and Open says why it cannot
// load.
package bpf
