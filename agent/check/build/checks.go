// Package build holds the production-build checks of chapter 4 of the
// seed: the race detector with a heap baseline, cache verification, PIE
// builds under ASLR, and TLS session reuse of an HTTP/1.1-only server.
package build

import "github.com/gopatrol/gopatrol/agent/check"

// Checks returns this package's checks.
func Checks() []check.Check {
	return []check.Check{
		racePprofCheck(raceTestSource),
		cacheVerifyCheck(),
		pieCheck("pie"),
		sessionReuseCheck(),
	}
}
