// Package probetest is the test harness of the probe plugins: it moves a
// test binary into its own network namespace, builds plugin binaries for
// real and lays out a verified plugin directory. Its own tests run every
// built-in probe through plugins/host against loopback servers that speak
// each vendor's metadata protocol.
//
// Main is the one TestMain of every package that runs plugin binaries: it
// builds them once per test binary. Skip turns a missing capability into a
// failure where the machine is required to have it (GOPATROL_REQUIRE_BPF=1
// or CI=true) and into a skip with the reason elsewhere.
package probetest
