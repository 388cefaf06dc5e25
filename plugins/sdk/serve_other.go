//go:build !linux

package sdk

// dieWithParent is Linux only; elsewhere go-plugin's own stdin/connection
// handling ends the plugin when the host closes it.
func dieWithParent(int) {}
