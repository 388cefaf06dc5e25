// Package goelf reads what a uprobe needs from an amd64 executable: the
// bytes of a function found by its symbol, and the file offset the kernel
// places the probe by.
//
// Functions are found through the ELF symbol table or, in binaries built
// with -ldflags=-s (go test's are), through Go's own function table
// (.gopclntab), which the runtime always keeps. A function's code is read
// where the kernel will put the probe, by file offset, and checked against
// what its section holds, so that a malformed file cannot make a probe land
// on bytes nobody disassembled. OpenGo and Refuse give the callers (the
// sensor's syscall-error probes, the TLS probes) one way to open a Go binary
// and one shape of "not probed, and why" error.
//
// The executables read are untrusted input (anything a build runs can be
// probed): every parse error is an error, never a panic, which
// FuzzGoExecutable checks starting from the real go command.
package goelf
