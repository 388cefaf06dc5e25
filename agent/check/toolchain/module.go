package toolchain

import (
	"context"
	"fmt"
	"go/version"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/modfile"

	"github.com/gopatrol/gopatrol/agent/check"
)

var moduleToolchain = check.Check{
	ID:     "module.toolchain",
	Title:  "the module's go and toolchain lines can be met",
	Source: "1",
	Run:    runModuleToolchain,
}

// toolchainSetting is GOTOOLCHAIN as cmd/go's toolchain.Select reads it:
// <min>[+auto|+path], with auto = local+auto and path = local+path.
type toolchainSetting struct {
	Min  string // "local" or a toolchain name like go1.22.3
	Mode string // "", "auto" or "path"
}

// parseToolchain applies cmd/go's rules; the error quotes the value as the
// go command would reject it.
func parseToolchain(s string) (toolchainSetting, error) {
	switch s {
	case "":
		// No GOTOOLCHAIN anywhere (go.env lost it): cmd/go runs locally.
		return toolchainSetting{Min: "local"}, nil
	case "auto", "path":
		return toolchainSetting{Min: "local", Mode: s}, nil
	}
	min, suffix, plus := strings.Cut(s, "+")
	if min != "local" && toolchainVersion(min) == "" {
		if plus {
			return toolchainSetting{}, fmt.Errorf("invalid GOTOOLCHAIN %q: invalid minimum toolchain %q", s, min)
		}
		return toolchainSetting{}, fmt.Errorf("invalid GOTOOLCHAIN %q", s)
	}
	if plus && suffix != "auto" && suffix != "path" {
		return toolchainSetting{}, fmt.Errorf("invalid GOTOOLCHAIN %q: only version suffixes are +auto and +path", s)
	}
	return toolchainSetting{Min: min, Mode: suffix}, nil
}

// toolchainVersion is cmd/go's gover.FromToolchain: go1.22.3 and
// gccgo-go1.22.3 name Go 1.22.3; anything after a further dash is a
// custom suffix.
func toolchainVersion(name string) string {
	if i := strings.Index(name, "-go1"); i >= 0 && !strings.HasPrefix(name, "go") {
		name = name[i+1:]
	}
	v, _, _ := strings.Cut(name, "-")
	if !version.IsValid(v) {
		return ""
	}
	return v
}

// ParseGOTOOLCHAIN validates a GOTOOLCHAIN value like the go command; it is
// exported for env.config.
func ParseGOTOOLCHAIN(s string) error {
	_, err := parseToolchain(s)
	return err
}

// findGoMod is the go.mod that governs dir: `go env GOMOD` when the
// toolchain found one, else the nearest go.mod upward (GO111MODULE=off hides
// it from go env but not from the toolchain selection).
func findGoMod(t *check.Target, gomod, dir string) string {
	if gomod != "" && gomod != os.DevNull {
		return gomod
	}
	for d := dir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "go.mod")
		if fi, err := os.Stat(t.Path(p)); err == nil && !fi.IsDir() {
			return p
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
}

func runModuleToolchain(ctx context.Context, env *check.Env) check.Result {
	t, tc := env.Target, env.Toolchain
	gomod := findGoMod(t, tc.Get("GOMOD"), t.Dir)
	if gomod == "" {
		return check.Skipf("no go.mod in %s or above (use -C to point at a module)", t.Dir)
	}
	data, err := t.ReadFile(gomod)
	if err != nil {
		return check.Errorf("read %s: %v", gomod, err)
	}
	f, err := modfile.Parse(gomod, data, nil)
	if err != nil {
		return check.Failf("%s does not parse: %v", gomod, err).With("go.mod", gomod).
			WithFix("fix the syntax error in %s", gomod)
	}
	local := readBinInfo(t, tc.Go).Version
	if local == "" {
		local = tc.Version()
	}
	r := check.Passf("").With("go.mod", gomod).With("local", local+" ("+tc.Go+")").With("GOTOOLCHAIN", tc.GOTOOLCHAIN)
	if f.Go == nil {
		return restate(r, check.Pass, "%s has no go line (treated as go 1.16); %s can build it", gomod, local)
	}
	need := "go" + f.Go.Version
	r = r.With("go line", "go "+f.Go.Version)
	want := need // what the module asks for, counting the toolchain line
	if f.Toolchain != nil {
		r = r.With("toolchain line", "toolchain "+f.Toolchain.Name)
		if tv := toolchainVersion(f.Toolchain.Name); tv != "" && version.Compare(tv, want) > 0 {
			want = f.Toolchain.Name
		}
	}

	set, err := parseToolchain(tc.GOTOOLCHAIN)
	if err != nil {
		return restate(r, check.Skip, "cannot tell which Go builds %s: %v (see env.config)", gomod, err)
	}
	min := local
	if set.Min != "local" {
		min = set.Min
	}
	minV := toolchainVersion(min)

	if set.Mode == "" {
		// No switching: the go line is a hard minimum, the toolchain
		// line only a preference.
		if version.Compare(need, minV) > 0 {
			fix := fmt.Sprintf("GOTOOLCHAIN=auto go build (downloads %s), or install %s and put it first on PATH, or go env -w GOTOOLCHAIN=%s+auto", need, need, min)
			if p := tc.Get("GOPROXY"); p == "off" || p == "" {
				// Nothing can be downloaded: only an installed Go helps.
				fix = fmt.Sprintf("install <go%s, from go.dev/dl or your mirror> and put it first on PATH (GOPROXY=%s cannot download it)", need, p)
			}
			return restate(r.WithFix("%s", fix),
				check.Fail, "%s requires go >= %s but GOTOOLCHAIN=%s runs %s: go commands fail with \"go.mod requires go >= %s (running go %s; GOTOOLCHAIN=%s)\"",
				gomod, f.Go.Version, tc.GOTOOLCHAIN, min, f.Go.Version, strings.TrimPrefix(minV, "go"), tc.GOTOOLCHAIN)
		}
		return restate(r, check.Pass, "%s (go %s) builds with %s", gomod, f.Go.Version, min)
	}

	if version.Compare(toolchainVersion(want), minV) <= 0 {
		return restate(r, check.Pass, "%s (go %s) builds with %s, no toolchain switch", gomod, f.Go.Version, min)
	}
	// The go command will switch to want for every command in this module.
	// A switch to a toolchain at hand is what the module's toolchain line
	// asks for, and builds work: a pass that says so (the matrix's
	// toolchain-line installation), not a warning.
	if set.Mode == "path" {
		if found := t.LookPath(want); len(found) > 0 {
			return restate(r.With("switch", found[0]), check.Pass,
				"go commands in this module switch from %s to %s found on PATH at %s", min, want, found[0])
		}
		return restate(r.WithFix("install %s and put it on PATH as %s, or GOTOOLCHAIN=auto", want, want), check.Fail,
			"%s needs %s but GOTOOLCHAIN=%s looks only on PATH and there is no %s there", gomod, want, tc.GOTOOLCHAIN, want)
	}
	if found := t.LookPath(want); len(found) > 0 {
		return restate(r.With("switch", found[0]), check.Pass,
			"go commands in this module switch from %s to %s (found on PATH at %s)", min, want, found[0])
	}
	// From here the go command downloads the toolchain, or takes it from
	// the module cache, and either way verifies it against the checksum
	// database (GONOSUMDB does not apply): GOSUMDB=off refuses the switch.
	if sumdb := tc.Get("GOSUMDB"); sumdb == "off" {
		return restate(r.With("GOSUMDB", sumdb).WithFix("install %s on PATH as %s (the go command runs it from there unverified), or unset GOSUMDB", want, want), check.Fail,
			"%s needs %s, and the go command verifies a toolchain it switches to against the checksum database, but GOSUMDB=off: go commands fail with \"checksum database disabled by GOSUMDB=off\"", gomod, want)
	}
	modcache := tc.Get("GOMODCACHE")
	cached := filepath.Join(modcache, "golang.org", "toolchain@v0.0.1-"+want+"."+tc.Get("GOHOSTOS")+"-"+tc.Get("GOHOSTARCH"))
	if fi, err := os.Stat(t.Path(cached)); err == nil && fi.IsDir() {
		return restate(r.With("switch", cached), check.Pass,
			"go commands in this module switch from %s to the downloaded %s at %s", min, want, cached)
	}
	// The value is reported, never its credentials.
	proxy := check.RedactURLs(tc.Get("GOPROXY"))
	r = r.With("GOPROXY", proxy)
	if proxy == "off" || proxy == "" || strings.HasPrefix(proxy, "off") {
		return restate(r.WithFix("install <%s, from go.dev/dl or your mirror> and put it on PATH, or export GOPROXY=<a proxy that serves golang.org/toolchain>", want), check.Fail,
			"%s needs %s; GOTOOLCHAIN=%s would download it but GOPROXY=%q cannot: go commands fail", gomod, want, tc.GOTOOLCHAIN, proxy)
	}
	return restate(r.WithFix("install <%s, from go.dev/dl or your mirror> and put it on PATH to build without a download", want), check.Warn,
		"%s needs %s: the first go command here downloads it from %s (GOTOOLCHAIN=%s) and uses it instead of %s", gomod, want, proxy, tc.GOTOOLCHAIN, min)
}
