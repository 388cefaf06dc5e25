// Package cgo checks the C side of the toolchain: whether cgo is on and
// why not, whether the C compiler named by CC exists and runs, whether a
// tiny cgo program really compiles and links, and whether the cgroup's
// pids limit leaves room for gcc's helper processes.
package cgo
