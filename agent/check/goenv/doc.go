// Package goenv holds the checks of the go command's environment: that the
// paths `go env` reports are real and absolute, that the settings in the
// environment and the GOENV file parse the way cmd/go parses them, and that
// the go command can actually build and run a program here.
package goenv
