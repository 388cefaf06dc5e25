package catalog

import (
	"regexp"
	"testing"
)

// Every check ID of DESIGN.md is implemented, once, with a title and the
// seed section it comes from.
func TestCatalogueIsComplete(t *testing.T) {
	idRE := regexp.MustCompile(`^[a-z0-9]+\.[a-z0-9-]+$`)
	seen := map[string]bool{}
	for _, c := range All() {
		if seen[c.ID] {
			t.Errorf("check %s registered twice", c.ID)
		}
		seen[c.ID] = true
		if !idRE.MatchString(c.ID) || c.Title == "" || c.Source == "" || c.Run == nil {
			t.Errorf("check %q is incomplete: title %q seed %q run %v", c.ID, c.Title, c.Source, c.Run != nil)
		}
		if rank(c.ID) == len(Order) {
			t.Errorf("check %s is not in catalog.Order", c.ID)
		}
	}
	for _, id := range Order {
		if !seen[id] {
			t.Errorf("check %s (DESIGN.md) is not implemented", id)
		}
	}
}
