// Package remedy applies the fixes that checks declare automatable
// (check.Remedy): `gopatrol check --fix`, and the agent's rules that
// remediate.
//
// The story of one fix: the check runs; when its result carries remedies,
// each is planned against the machine as it is now, and the plan refuses
// anything outside the path the check owns (a cache directory that is a
// link to somewhere else, a file outside GOCACHE, a link that resolves
// again). A dry run stops there and reports the plan. Otherwise the
// changes are made, the check runs again, and the outcome says whether the
// fix held, what changed, and, for each change, the shell command that
// undoes it. Undo runs those commands.
//
// What is never automated: deleting anything that may hold a person's data
// (damaged cache files are moved into a quarantine inside the cache, not
// deleted), and changing the Go installation. Those fixes stay in the
// report for a person (docs/remediation.md).
package remedy
