// Package proxy holds the checks of the module download path (seed 3.2):
// proxy.tls verifies the certificates of the GOPROXY and GOSUMDB hosts
// against the roots the target's go command loads, and proxy.protocol asks
// each proxy for a probe module in the GOPROXY protocol.
package proxy

import "github.com/gopatrol/gopatrol/agent/check"

// Checks returns this package's checks.
func Checks() []check.Check { return []check.Check{tlsCheck, protocolCheck} }
