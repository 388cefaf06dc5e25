// Package objstamp records, at `go generate` time, the sha256 of the C
// inputs of a BPF object and of the object itself, plus the clang major
// version; Verify recomputes them so that a test fails when the committed
// object is stale (C edited without regenerating) or was not produced from
// the committed sources.
//
// Hashing, rather than recompiling and comparing bytes, is what works on
// any machine: it needs no clang, and it does not depend on the exact clang
// build. TestObjectsReproducible in bpf and bpf/tlsprobe additionally
// recompiles when the recorded clang major is installed, which catches an
// object produced with different flags.
package objstamp
