// Package fileclass tells the eBPF sensor which directories are the
// toolchain's: GOROOT, GOMODCACHE, GOCACHE, GOBIN and GOTMPDIR, as the
// doctor resolved them (check.Toolchain.Dirs), each mapped onto its
// bpf.Class. The kernel then labels every failed file access of a
// toolchain process with the class of the longest matching directory, the
// value of gopatrol.file.class.
//
// `gopatrol trace` and the agent both call it, so the two classify the same
// paths the same way; it sits between agent/check (which knows nothing of
// eBPF) and bpf (which knows nothing of go env).
package fileclass
