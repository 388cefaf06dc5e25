// Command gopatrol-probe-example is the smallest complete gopatrol probe
// plugin, the one docs/plugins.md walks through. Its "cloud" is a JSON
// identity file; a real probe asks a metadata service instead (see
// plugins/aws and plugins/sdk/metadata).
//
// Build it as gopatrol-probe-example, put it in the plugin directory with
// its sha256 in SHA256SUMS, and `gopatrol plugins detect` runs it.
package main
