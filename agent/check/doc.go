// Package check is gopatrol's doctor engine: the Check type, the Target a
// check looks at, the toolchain resolved once per run, and the Runner that
// runs checks concurrently and turns a panic or a hang into status error.
//
// Every check cites its section of the source document (Check.Source,
// "seed" in the JSON report): the Chinese guide to Go toolchain problems
// that gopatrol was built from, chapters 1-4 (DESIGN.md names the file).
//
// The Target is the machine under test, which for the agent is a host
// mounted at /host. Everything that looks at its files goes through the
// Target, so that nothing reads this process's files by mistake:
// Target.Resolve follows symbolic links inside Target.Root (an absolute
// link is the target's path), Target.ReadFile and Target.HostPath open
// files through it, Target.StatN renders a link as `stat -c %N` does,
// Target.UserName names the build user, and Within tells whether a path is
// inside a directory.
//
// Everything the engine runs goes through Target.Command and Run or
// CombinedOutput: each command has a deadline (the runner gives every
// check one; ResolveToolchain bounds `go env` with GoEnvTimeout), its own
// process group that is killed as a whole, grandchildren included, and a
// bounded wait for its output pipes; what it prints is capped at MaxOutput
// (CappedWriter) and a cut is said. Env.Go and Env.GoCommand give every go
// command a GOTMPDIR of its own, removed when it ends, so that a build
// killed at a deadline leaves no go-build* directory behind.
//
// The checks themselves live in the sub-packages (toolchain, goenv, cache,
// seclabel, cgo, gobin, proxy, module, build, tlscheck); access decides
// file-access questions for them; catalog lists every check in a stable
// order.
package check
