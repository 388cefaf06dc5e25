package check

import "slices"

// RemedyKind names one of the few changes gopatrol makes itself
// (`gopatrol check --fix`, docs/remediation.md). Each is small, confined
// to a path the check owns, and has an undo; everything else a check
// prints stays a fix for a person.
type RemedyKind string

const (
	// CreateDir creates the missing cache directory Root for User: the
	// go command would create it but the user cannot write its parent.
	CreateDir RemedyKind = "create-dir"
	// GrantWrite hands the cache directory Root (and what it holds) to
	// User, who builds there and cannot write it.
	GrantWrite RemedyKind = "grant-write"
	// PruneCache moves the damaged build-cache files Paths out of the
	// cache Root (into a quarantine inside Root, so that undo can put
	// them back); the go command rebuilds what is missing.
	PruneCache RemedyKind = "prune-cache"
	// RemoveLink removes the dangling links Paths inside Root, left by an
	// upgrade or a removed install: a dangling link holds no data.
	RemoveLink RemedyKind = "remove-link"
	// SetGoEnv writes Key=Value into the GOENV file Root (an empty Value
	// removes the setting), as `go env -w` and `go env -u` would.
	SetGoEnv RemedyKind = "set-goenv"
)

// Remedy is a fix a check declares automatable: what it changes, within
// which path. The remedy package plans it (refusing anything outside
// Root), applies it, and says how to undo it.
type Remedy struct {
	Kind RemedyKind `json:"kind"`
	// Root is the path the check owns, in the target's namespace: the
	// cache directory, the GOENV file, the dangling link. Nothing outside
	// it is touched.
	Root string `json:"root"`
	// Paths are what is changed inside Root (PruneCache, RemoveLink).
	Paths []string `json:"paths,omitempty"`
	// User is the build user (CreateDir, GrantWrite).
	User string `json:"user,omitempty"`
	// Key and Value are the GOENV setting (SetGoEnv).
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
}

// WithRemedy returns r declaring that its fix can be applied by gopatrol
// as rem.
func (r Result) WithRemedy(rem ...Remedy) Result {
	r.Remedies = append(slices.Clone(r.Remedies), rem...)
	return r
}
