package toolchain

import (
	"go/version"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// FuzzGOTOOLCHAIN checks parseToolchain against cmd/go's grammar,
// <min>[+auto|+path] with min local or a toolchain name: an accepted value
// is rebuilt from its parts, its minimum names a valid Go version, and a
// rejected one is quoted in the error as the go command quotes it.
func FuzzGOTOOLCHAIN(f *testing.F) {
	for _, s := range []string{
		"", "auto", "path", "local", "local+auto", "local+path",
		"go1.25.0", "go1.25.0+auto", "go1.22.3+path", "gccgo-go1.22.3", "go1.23rc1", "go1.21.0-custom+auto",
		// Malformed values the tests know, and near misses.
		"go1.25", "go1.25.0+manual", "1.25.0", "+auto", "local+", "go1.99.1+auto+path", "auto+auto", "go",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := parseToolchain(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("parseToolchain(%q): error %q does not quote the value", s, err)
			}
			if ParseGOTOOLCHAIN(s) == nil {
				t.Fatalf("ParseGOTOOLCHAIN(%q) accepts what parseToolchain rejects", s)
			}
			return
		}
		if set.Mode != "" && set.Mode != "auto" && set.Mode != "path" {
			t.Fatalf("parseToolchain(%q) = %+v: unknown mode", s, set)
		}
		if set.Min != "local" {
			v := toolchainVersion(set.Min)
			if !version.IsValid(v) {
				t.Fatalf("parseToolchain(%q) = %+v: minimum %q is no Go version", s, set, v)
			}
		}
		rebuilt := set.Min
		if set.Mode != "" {
			rebuilt += "+" + set.Mode
		}
		switch s {
		case "":
			if set.Min != "local" || set.Mode != "" {
				t.Fatalf("empty GOTOOLCHAIN = %+v, want local", set)
			}
		case "auto", "path":
			if rebuilt != "local+"+s {
				t.Fatalf("GOTOOLCHAIN=%s = %+v, want local+%s", s, set, s)
			}
		default:
			if rebuilt != s {
				t.Fatalf("parseToolchain(%q) = %+v, which reads back as %q", s, set, rebuilt)
			}
		}
	})
}

// FuzzGoModToolchain feeds go and toolchain lines through modfile.Parse
// (what module.toolchain reads) and checks what the check derives from
// them: toolchainVersion yields a valid Go version, taken from the name,
// or nothing. modfile accepts go lines that go/version cannot order (go
// 1.21.0rc1); cmd/go's gover then orders them below every release and so
// does the check, since both compare with the same rules.
func FuzzGoModToolchain(f *testing.F) {
	for _, s := range [][2]string{
		{"1.21", ""}, {"1.22.3", "go1.22.5"}, {"1.21rc1", ""}, {"1.99.1", ""}, {"1.20", "default"},
		{"1.22.0", "gccgo-go1.22.3"}, {"1.22.0", "go1.23.0-custom"},
		{"1.21.0rc1", ""}, {"1", "go1"}, {"1.22.x", "go1.22"}, {"", "toolchain"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, goLine, toolchainLine string) {
		if strings.ContainsAny(goLine+toolchainLine, "\n\r") {
			return // one line each
		}
		src := "module example.com/m\n\ngo " + goLine + "\n"
		if toolchainLine != "" {
			src += "toolchain " + toolchainLine + "\n"
		}
		mf, err := modfile.Parse("go.mod", []byte(src), nil)
		if err != nil || mf.Go == nil {
			return
		}
		need := "go" + mf.Go.Version
		if v := toolchainVersion(need); v != "" && (!version.IsValid(v) || v != need) {
			t.Fatalf("go line %q: toolchainVersion = %q", mf.Go.Version, v)
		}
		if mf.Toolchain == nil {
			return
		}
		tv := toolchainVersion(mf.Toolchain.Name)
		if tv == "" {
			return
		}
		if !version.IsValid(tv) || !strings.Contains(mf.Toolchain.Name, tv) {
			t.Fatalf("toolchain %q yields %q", mf.Toolchain.Name, tv)
		}
	})
}
