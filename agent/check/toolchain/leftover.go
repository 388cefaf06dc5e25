package toolchain

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
)

// leftoverEntries finds PATH entries that lead through a dangling link
// into a removed Go install (the source's section 2.1: /usr/local/go ->
// go1.20 after go1.20 was deleted). The shell skips them while a later
// entry supplies a working go, but the next shell or CI image that
// reorders PATH, or reinstalls at the old place, breaks. Links whose
// destination does not look like Go are someone else's business.
func leftoverEntries(t *check.Target) []check.Finding {
	var fs []check.Finding
	entries := filepath.SplitList(t.Getenv("PATH"))
	for _, dir := range entries {
		if !filepath.IsAbs(dir) {
			continue
		}
		res, err := t.Resolve(dir)
		if err != nil || res.Dangling == nil {
			continue
		}
		l := *res.Dangling
		if !strings.Contains(strings.ToLower(l.Path+l.Dest), "go") {
			continue
		}
		kept := slices.DeleteFunc(slices.Clone(entries), func(e string) bool { return e == dir })
		fs = append(fs, check.Finding{
			Status:  check.Warn,
			Summary: fmt.Sprintf("PATH entry %s leads through the dangling link %s (a removed Go install): a later entry supplies go now, but a PATH in another order finds nothing or an old go", dir, l),
			Fix:     fmt.Sprintf("export PATH=%s (in your shell profile), or rm %s", strings.Join(kept, string(filepath.ListSeparator)), l.Path),
			Remedy:  &check.Remedy{Kind: check.RemoveLink, Root: l.Path, Paths: []string{l.Path}},
		})
	}
	return fs
}
