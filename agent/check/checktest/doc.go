// Package checktest builds the worlds that checks diagnose, for tests: a
// Target with a clean, explicit environment, in which a test breaks exactly
// one thing and runs a check against it through the real runner.
//
// Table tests list Cases for RunCases; Mkdir, Symlink, WriteFile and
// MountTmpfs build the broken files (internal/loopback gives an address
// where nothing listens).
package checktest
