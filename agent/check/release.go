package check

import "go/version"

// Releases that changed what a healthy installation looks like, for the
// checks that must not hold an older Go to a newer one's layout (the
// compatibility matrix in agent/check/matrix finds where they do).
const (
	// GoEnvRelease shipped $GOROOT/go.env (the GOPROXY, GOSUMDB and
	// GOTOOLCHAIN defaults) and GOTOOLCHAIN with toolchain switching.
	GoEnvRelease = "go1.21"
)

// Since reports whether the toolchain is release (such as "go1.21") or
// newer. A toolchain whose version is unknown (go env failed, a
// development build) counts as new: the checks then judge it by the
// newest rules, as they did before they knew about releases.
func (tc *Toolchain) Since(release string) bool {
	if tc == nil || tc.Err != nil {
		return true
	}
	v := tc.Version()
	if !version.IsValid(v) {
		return true
	}
	return version.Compare(version.Lang(v), release) >= 0
}
