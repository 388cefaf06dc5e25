// Package image tests what gopatrol's container image (the Dockerfile at
// the root of the repository) would hold, since images cannot be built on
// this project's machines: `make build` produces every file the
// Dockerfile copies, the binaries are static (the image has no libc), the
// plugin directory and its SHA256SUMS pass the plugin host's own
// verification, and the directory is where the DaemonSet's config looks.
package image
