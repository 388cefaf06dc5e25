package module

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// FuzzModulesTxt feeds parseModulesTxt a vendor/modules.txt, a file that
// comes with any repository the doctor is pointed at, and checks the
// invariants module.vendor's comparison with go.mod relies on: every
// module is listed once, in Meta, with a valid version or none (a
// wildcard replacement); every replaced module has a replacement; every
// package is a valid import path on a line of its own and belongs to a
// module that is marked as having packages.
func FuzzModulesTxt(f *testing.F) {
	f.Add(`# example.com/a v1.0.0
## explicit; go 1.21
example.com/a
example.com/a/b
# example.com/c v0.1.0 => ../c
## explicit
# example.com/d => example.com/e v1.2.0
# garbage line here
example.com/ignored
`)
	// What go mod vendor writes for replacements, a pre-1.14 file without
	// annotations, a duplicate module, CRLF, a torn file, and lines the go
	// command does not understand.
	f.Add("# golang.org/x/mod v0.43.0\n## explicit; go 1.23.0\ngolang.org/x/mod/modfile\ngolang.org/x/mod/module\n# example.com/old v1.0.0 => example.com/new v1.1.0\n")
	f.Add("# example.com/a v1.0.0\nexample.com/a\n# example.com/a v1.0.0\n## explicit\n")
	f.Add("# example.com/a v1.0.0\r\n## explicit\r\nexample.com/a\r\n")
	f.Add("# example.com/a v1.0.0 => \n# example.com/b v1.0.0 => x y z\n#  \n## explicit\n# example.com/c\n")
	f.Add("example.com/orphan\n## explicit\n# a b\n# a v1.0.0\n    example.com/indented\nnot a path!\n")
	f.Add("# example.com/a v1.0.0\n## explicit;;  explicit ;go 1.22\nexample.com/a\nexample.com/a\n")

	f.Fuzz(func(t *testing.T, data string) {
		mt := parseModulesTxt(data)
		if len(mt.Order) != len(mt.Meta) {
			t.Fatalf("%d modules in order, %d in Meta", len(mt.Order), len(mt.Meta))
		}
		lines := strings.Split(data, "\n")
		seen := map[module.Version]bool{}
		for _, m := range mt.Order {
			if seen[m] {
				t.Fatalf("%v listed twice", m)
			}
			seen[m] = true
			if m.Path == "" || m.Version != "" && !semver.IsValid(m.Version) {
				t.Fatalf("module %+v has no path or an invalid version", m)
			}
			if !slices.ContainsFunc(lines, func(l string) bool {
				f := strings.Fields(l)
				return strings.HasPrefix(l, "# ") && len(f) > 1 && f[1] == m.Path
			}) {
				t.Fatalf("module %+v is on no module line", m)
			}
			if _, ok := mt.Meta[m]; !ok {
				t.Fatalf("%v has no Meta", m)
			}
		}
		for _, m := range mt.Replaced {
			if !seen[m] || mt.Meta[m].Replacement.Path == "" {
				t.Fatalf("replaced module %v: known %v, replacement %+v", m, seen[m], mt.Meta[m].Replacement)
			}
		}
		for m, meta := range mt.Meta {
			if meta.Replacement.Path != "" && !slices.Contains(mt.Replaced, m) {
				t.Fatalf("%v has a replacement but is not in Replaced", m)
			}
		}
		for pkg, m := range mt.Packages {
			if module.CheckImportPath(pkg) != nil {
				t.Fatalf("package %q is no import path", pkg)
			}
			if !seen[m] || !mt.Meta[m].HasPackages {
				t.Fatalf("package %q belongs to %v, which is not a module with packages", pkg, m)
			}
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.TrimSpace(l) == pkg }) {
				t.Fatalf("package %q is on no line of its own", pkg)
			}
		}
	})
}
