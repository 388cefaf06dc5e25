// Package feature says whether this process can load gopatrol's eBPF
// sensors, and if not, exactly what is missing: privileges (CAP_BPF,
// CAP_PERFMON, or root), kernel BTF at BTFPath, or ring buffer support.
//
// Check is what bpf.Open and bpftest.Require ask first, so that a missing
// capability is reported as a *MissingError naming it (gopatrol trace
// exits 2 with it), never as a verifier or permission error from deep in
// the loader.
package feature
