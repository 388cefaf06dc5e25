// Package testgate decides what a test does when the machine lacks
// something it needs: root, a kernel feature, a tool such as setfacl,
// curl or git, a pseudo-terminal.
//
// On a developer's laptop the test is skipped with the reason. On the
// project's CI machine, which has all of them, such a skip would be a
// hole that passes silently, so with GOPATROL_REQUIRE_BPF=1 (which .ci/run
// sets) the same reason fails the test instead. The tests of agent/,
// otelcfg/ and cmd/ that cannot run somewhere go through Missing, and
// bpf/bpftest applies the same rule to the same variable, so that there
// is one switch; docs/testing.md lists the skips that remain.
package testgate
