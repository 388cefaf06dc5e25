// Package catalog lists every check of gopatrol in the order of DESIGN.md.
// The order is a contract: reports list results in it, and a check that
// moves between packages keeps its place.
package catalog
