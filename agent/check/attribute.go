package check

import "strings"

// Consequences. A go command fails the same way in every check that runs
// it: a GOFLAGS in the GOENV file that the go command rejects breaks
// env.functional, cgo.toolchain, module.verify and the builds alike. Only
// the check that owns the setting carries the fix; the others say that
// their finding follows from it (evidence "follows", the owner's ID), keep
// their own words, and drop their fix, which would only send the reader
// round in circles. Attribute runs after every check has finished.

// Follows is the evidence key that names the check a finding follows from.
const Follows = "follows"

// ownedWords is the evidence of an owning check that quotes the go
// command's own complaint: another check whose result quotes the same
// words hit the same cause.
var ownedWords = map[string][]string{
	"env.config": {"go list (real environment)"},
}

// goEnvOwners are the checks that explain a `go env` failure (they run
// without it, on the settings as configured), in order of precedence.
var goEnvOwners = []string{"env.config", "env.consistency", "goroot.valid"}

// Attribute marks the results that follow from another result's finding.
func Attribute(results []Result) []Result {
	failing := map[string]int{}
	for i, r := range results {
		if r.Status == Fail || r.Status == Warn {
			failing[r.ID] = i
		}
	}
	for i, r := range results {
		if _, ok := failing[r.ID]; !ok || r.Evidence[Follows] != "" {
			continue
		}
		if owner := ownerOf(r, results, failing); owner != "" {
			results[i] = consequence(r, owner)
		}
	}
	return results
}

func ownerOf(r Result, results []Result, failing map[string]int) string {
	for owner, keys := range ownedWords {
		j, ok := failing[owner]
		if !ok || owner == r.ID {
			continue
		}
		for _, k := range keys {
			words := FirstLine(results[j].Evidence[k])
			if before, _, ok := strings.Cut(words, " | "); ok {
				words = before
			}
			if words != "" && r.Mentions(words) {
				return owner
			}
		}
	}
	switch {
	case r.ID == "go.binary" && r.Status == Fail && strings.Contains(r.Summary, "but `go env` fails") && !strings.Contains(r.Summary, "; "):
		for _, owner := range goEnvOwners {
			if j, ok := failing[owner]; ok && results[j].Status == Fail {
				return owner
			}
		}
	case r.ID == "gobin.access" && strings.Contains(r.Summary, "neither GOBIN nor GOPATH is set"):
		if _, ok := failing["env.consistency"]; ok {
			return "env.consistency"
		}
	}
	return ""
}

// Mentions reports whether the summary or any evidence value holds s.
func (r Result) Mentions(s string) bool {
	if strings.Contains(r.Summary, s) {
		return true
	}
	for _, v := range r.Evidence {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}

func consequence(r Result, owner string) Result {
	r = r.With(Follows, owner)
	if r.Fix != "" {
		r = r.With("fix of its own", r.Fix)
	}
	r.Fix = ""
	r.Remedies = nil
	r.Summary += " (this follows from " + owner + "; its fix comes first)"
	return r
}
