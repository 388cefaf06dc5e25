package check

import "path/filepath"

// DirVars are the go env variables that name the toolchain's own
// directories: where its files live and where a build writes. The sensors
// classify file-access failures by them (bpf classes of the same names,
// lower-case), so `trace` and the agent read them from here.
var DirVars = []string{"GOROOT", "GOMODCACHE", "GOCACHE", "GOBIN", "GOTMPDIR"}

// Dirs returns the toolchain's directories by go env name (DirVars), as the
// go command would use them: an unset GOBIN is GOPATH's first entry + /bin,
// where `go install` writes. A value that is empty or not absolute is left
// out (an empty GOTMPDIR means the system temp dir, which is not the
// toolchain's). Nil when the toolchain could not be resolved.
func (tc *Toolchain) Dirs() map[string]string {
	if tc == nil || tc.Env == nil {
		return nil
	}
	dirs := map[string]string{}
	for _, name := range DirVars {
		d := tc.Env[name]
		if name == "GOBIN" && d == "" {
			if gopath := filepath.SplitList(tc.Env["GOPATH"]); len(gopath) > 0 && gopath[0] != "" {
				d = filepath.Join(gopath[0], "bin")
			}
		}
		if filepath.IsAbs(d) {
			dirs[name] = d
		}
	}
	return dirs
}
