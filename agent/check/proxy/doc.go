// Package proxy holds the checks of the module download path (source section 3.2):
// proxy.tls verifies the certificates of the GOPROXY and GOSUMDB hosts
// against the roots the target's go command loads, and proxy.protocol asks
// each proxy for a probe module in the GOPROXY protocol. The trust store is read as the target's go command would read
// it, through the target's root.
package proxy
