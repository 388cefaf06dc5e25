// Package goasm disassembles amd64 functions of Go executables to find where
// a uprobe may be placed without harming the process.
//
// A uprobe replaces one instruction with a trap: placed anywhere but on the
// first byte of an instruction, it corrupts the program. So every offset
// this package returns comes from decoding the function from its first
// byte, and every function whose code is not exactly the expected shape is
// refused with the reason rather than probed approximately.
//
// Two probes use it:
//
//   - The sensor's file-failure probe (bpf.ResolveGoTool): SyscallErrorSites
//     finds, in the raw syscall function of a Go binary, the first
//     instruction of the branch taken when the syscall failed, where RAX
//     holds -errno (ErrorBranches).
//   - The TLS handshake probes (tlsprobe.ResolveGo): CheckRegABIPrologue
//     tells a register-ABI Go function by its stack-bound check against g
//     in R14, and Returns lists the offsets of every RET.
//
// Reading the executable (symbols, file offsets) is bpf/goelf's job; this
// package only looks at code bytes, which makes it easy to fuzz.
package goasm
