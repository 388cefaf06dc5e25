package toolchain

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"

	"github.com/gopatrol/gopatrol/agent/check"
)

var gorootGOOS = check.Check{
	ID:     "goroot.goos",
	Title:  "the go binary's GOOS/GOARCH match GOROOT's source",
	Source: "2.2",
	Run:    runGorootGOOS,
}

// The generated constants of internal/goos and internal/goarch, e.g.
// const GOOS = `linux`.
var (
	goosConst   = regexp.MustCompile("(?m)^const GOOS = [`\"]([^`\"]*)[`\"]")
	goarchConst = regexp.MustCompile("(?m)^const GOARCH = [`\"]([^`\"]*)[`\"]")
)

func runGorootGOOS(ctx context.Context, env *check.Env) check.Result {
	t, tc := env.Target, env.Toolchain
	goroot := tc.Get("GOROOT")
	bi := readBinInfo(t, tc.Go)
	if !bi.IsGo() {
		return check.Skipf("%s has no Go build info, see go.binary", tc.Go)
	}
	if bi.GOOS == "" || bi.GOARCH == "" {
		return check.Skipf("%s records no GOOS/GOARCH build settings (built by %s)", tc.Go, bi.Version)
	}
	ev := map[string]string{"binary": fmt.Sprintf("%s: GOOS=%s GOARCH=%s", tc.Go, bi.GOOS, bi.GOARCH)}
	var fs []check.Finding
	for _, c := range []struct {
		name, want, file string
		re               *regexp.Regexp
	}{
		{"GOOS", bi.GOOS, filepath.Join(goroot, "src", "internal", "goos", "zgoos_"+bi.GOOS+".go"), goosConst},
		{"GOARCH", bi.GOARCH, filepath.Join(goroot, "src", "internal", "goarch", "zgoarch_"+bi.GOARCH+".go"), goarchConst},
	} {
		src, err := t.ReadFile(c.file)
		if err != nil {
			ev[c.name+".source"] = c.file + ": " + err.Error()
			fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s was built for %s=%s but GOROOT has no %s", tc.Go, c.name, c.want, c.file), Fix: fmt.Sprintf("reinstall Go from <the %s/%s release archive> (GOROOT %s is not a source tree for %s)", bi.GOOS, bi.GOARCH, goroot, c.want)})
			continue
		}
		m := c.re.FindSubmatch(src)
		if m == nil {
			ev[c.name+".source"] = c.file + ": no const " + c.name
			fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s defines no const %s", c.file, c.name), Fix: "reinstall Go from <the release archive> (" + c.file + " was modified)"})
			continue
		}
		got := string(m[1])
		ev[c.name+".source"] = fmt.Sprintf("%s: const %s = %q", c.file, c.name, got)
		if got != c.want {
			fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s was built for %s=%s but %s says %s = %q", tc.Go, c.name, c.want, c.file, c.name, got), Fix: fmt.Sprintf("reinstall Go from <one %s/%s release archive> (GOROOT %s mixes platforms)", bi.GOOS, bi.GOARCH, goroot)})
		}
	}
	return check.Combine(fmt.Sprintf("%s/%s in %s and in GOROOT's internal/goos and internal/goarch", bi.GOOS, bi.GOARCH, tc.Go), fs, ev)
}
