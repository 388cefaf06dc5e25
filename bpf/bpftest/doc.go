// Package bpftest gates tests that load real eBPF programs.
//
// Where the machine cannot load them (not root, no BTF, no ring buffer) a
// test is skipped with the reason, except when GOPATROL_REQUIRE_BPF=1 (CI
// sets it): then the same reason fails the test, so CI never passes by
// skipping the sensors. Require is for the capability itself; Need is for
// everything else such a test depends on (a tool on PATH, a library), with
// the same rule.
package bpftest
