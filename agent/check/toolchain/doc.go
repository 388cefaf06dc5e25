// Package toolchain holds the checks of the Go toolchain itself: the go
// binaries on PATH, the GOROOT they belong to, the links between them, the
// versions each part reports, and what a module's go.mod asks of them.
//
// Everything that can be read in-process is (ELF build info, VERSION files,
// the GOROOT's source constants); the go command only runs where running
// it is the thing under test.
package toolchain
