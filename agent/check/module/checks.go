// Package module holds the checks of the module's own integrity (seed
// 3.1): module.verify runs `go mod verify`, module.vendor compares the
// vendor tree with go.mod. Both look at the module in the target's
// directory (gopatrol check -C DIR).
package module

import "github.com/gopatrol/gopatrol/agent/check"

// Checks returns this package's checks.
func Checks() []check.Check { return []check.Check{verifyCheck, vendorCheck} }
