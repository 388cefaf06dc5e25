package fileclass

import (
	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/bpf"
)

// classOf is the sensor class of each of check.DirVars.
var classOf = map[string]bpf.Class{
	"GOROOT":     bpf.ClassGOROOT,
	"GOMODCACHE": bpf.ClassGOMODCACHE,
	"GOCACHE":    bpf.ClassGOCACHE,
	"GOBIN":      bpf.ClassGOBIN,
	"GOTMPDIR":   bpf.ClassGOTMPDIR,
}

// Of maps the toolchain's directories onto sensor classes, for
// bpf.Config.Classes. Empty (and no error) when the toolchain could not be
// resolved: failures are then counted as "other".
func Of(tc *check.Toolchain) map[bpf.Class][]string {
	classes := map[bpf.Class][]string{}
	for name, dir := range tc.Dirs() {
		if c, ok := classOf[name]; ok {
			classes[c] = []string{dir}
		}
	}
	return classes
}
