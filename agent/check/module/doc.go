// Package module holds the checks of the module's own integrity (source
// section 3.1): module.verify runs `go mod verify`, module.vendor compares the
// vendor tree with go.mod. Both look at the module in the target's
// directory (gopatrol check -C DIR).
package module
