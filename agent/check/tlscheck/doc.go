// Package tlscheck holds the checks of chapter 4.4 of the source document
// about TLS as Go servers speak it: tls.session-reuse, that an
// HTTP/1.1-only Go TLS server (HTTP/2 off) resumes TLS 1.2 sessions across
// reconnects, against the check's own loopback server or a server of the
// user's (GOPATROL_TLS_REUSE_ADDR, GOPATROL_TLS_REUSE_CA).
//
// The package is named for its area, tls, and not tls itself, so that it
// does not shadow crypto/tls, which every file here imports.
package tlscheck

import "github.com/gopatrol/gopatrol/agent/check"

// Checks returns this package's checks.
func Checks() []check.Check {
	return []check.Check{sessionReuseCheck()}
}
