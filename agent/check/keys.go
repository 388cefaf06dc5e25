package check

import (
	"maps"
	"slices"
	"strings"
)

// EvidenceKeys returns the keys of an evidence map in natural order: runs
// of digits compare as numbers, so "corrupt.2" comes before "corrupt.10"
// and "go.9" before "go.10".
func EvidenceKeys(ev map[string]string) []string {
	return slices.SortedFunc(maps.Keys(ev), NaturalCompare)
}

// NaturalCompare orders strings as text, except that runs of digits
// compare by their value (leading zeros aside, a longer run is larger).
func NaturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			if c := da - db; c != 0 { // "02" after "2"
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
