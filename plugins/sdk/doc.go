// Package sdk is what a probe plugin author imports: the Probe interface,
// the protocol (gopatrol.probe.v1 over gRPC through hashicorp/go-plugin)
// and Serve, which hides the handshake, the magic cookie and the gRPC
// plumbing. See docs/plugins.md and plugins/example.
//
// A plugin is a main package whose main calls Serve(probe) and nothing
// else: Serve does go-plugin's handshake on stdout (which therefore belongs
// to it), serves gopatrol.probe.v1 with the host's automatic mutual TLS,
// and on Linux makes the kernel kill the plugin when its host dies. A probe
// implements Info and Detect (and Collector for vendor metrics); Detect
// returns attributes, an error wrapping ErrNotThisCloud, or another error
// when the cloud's metadata is broken; Status names these outcomes as the
// host reports them. Attribute names (attributes.go) are OpenTelemetry
// semantic conventions, without linking the OTel SDK into the plugin.
//
// The wire types live in plugins/internal/probev1, out of the authors'
// reach, so the protocol can grow without breaking a plugin's source.
// Package metadata (under sdk) is the HTTP client for metadata services.
package sdk
