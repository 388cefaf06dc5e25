// Package gobin checks GOBIN, where `go install` puts binaries: that it
// exists or can be made, what its POSIX ACLs say (access and default, shown
// as getfacl prints them), and whether another user can reach and run what
// is installed there. Access is decided in-process with package acl, the
// way the kernel does; as root the verdict is confirmed by running a probe
// binary as nobody.
package gobin
