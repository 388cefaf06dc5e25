// Package host finds, verifies, launches and supervises gopatrol's probe
// plugins (hashicorp/go-plugin over gRPC), and merges their attributes.
// The CLI (`gopatrol plugins`, `check --export --plugin-dir`) and the agent
// use it; it knows nothing of OpenTelemetry.
//
// Trust model: a plugin runs with the agent's privileges, so the host only
// runs a binary that (1) sits in a plugin directory and is itself a regular
// file, not a symlink; (2) neither the directory, its parents (unless
// sticky, as /tmp), the binary nor the manifest is writable by group or
// others; (3) all of them are owned by root or by the user the agent runs
// as; (4) its sha256 is listed in the directory's manifest (SHA256SUMS,
// `sha256sum` format), checked again by go-plugin right before every exec,
// so a binary swapped after discovery is refused too. A manifest line for
// a file that is not there is reported, not ignored.
//
// Lifecycle: Open starts the verified plugins in parallel under the
// caller's context and a start timeout; each runs in its own process
// group. Every call (Info at start, Detect, Collect) has a deadline. A
// plugin that dies is restarted after an exponential backoff by a
// supervisor that never holds a plugin's lock across a start, so a Detect
// answers within its own deadline (stale attributes meanwhile). A plugin
// that dies before its handshake is reported with its exit status and the
// last lines of its stderr. Close kills each plugin's whole process group,
// so nothing a plugin forked survives it, and returns in bounded time even
// when a grandchild holds the plugin's output open.
package host
