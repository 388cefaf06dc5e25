// Package build holds the production-build checks of chapter 4 of the
// source document: the race detector with a heap baseline
// (build.race-pprof), cache verification (build.cacheverify) and PIE builds
// under ASLR (build.pie-aslr). Each builds a small generated program in a
// scratch directory of its own with the target's real go command, as the
// build user, and removes it afterwards, also when cancelled.
//
// TLS session reuse, also of chapter 4, lives in tlscheck, the package of
// its ID's area.
package build
