// Package buildtrace turns the sensors' events of one go invocation tree
// into one trace of the build: a root span for the go command, a child
// span per process it ran (compile with its package, asm, link, cgo, the C
// compiler, vet, test binaries, nested go commands), nested as the
// processes were and timed from exec to exit, with file-access failures as
// span events and connects and TLS handshakes as child spans.
//
// The Builder keeps one open tree per top-level go command (bounded by
// Config.MaxOpen; the oldest is dropped and the overflow counted) and
// decides at the tree's end whether to keep it (tail sampling): every
// failed or incomplete build, every build slower than Config.Slow, and
// Config.Share of the rest. A tree that does not end within Config.MaxAge
// (a daemonised child) is closed by Sweep and marked incomplete.
//
// A finished Build is a plain tree of Spans: Emit exports it through an
// OpenTelemetry tracer with the kernel's timestamps, and Waterfall prints
// it as indented text for `gopatrol trace --builds`. Only the subcommand
// and package patterns of a go command's argv are kept, never flag values,
// environment or program arguments, which may hold secrets.
package buildtrace
