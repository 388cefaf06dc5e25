package catalog

import (
	"slices"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/build"
	"github.com/gopatrol/gopatrol/agent/check/cache"
	"github.com/gopatrol/gopatrol/agent/check/cgo"
	"github.com/gopatrol/gopatrol/agent/check/gobin"
	"github.com/gopatrol/gopatrol/agent/check/goenv"
	"github.com/gopatrol/gopatrol/agent/check/module"
	"github.com/gopatrol/gopatrol/agent/check/proxy"
	"github.com/gopatrol/gopatrol/agent/check/seclabel"
	"github.com/gopatrol/gopatrol/agent/check/tlscheck"
	"github.com/gopatrol/gopatrol/agent/check/toolchain"
)

// Order is the stable order of check IDs in reports, as in DESIGN.md.
var Order = []string{
	"go.binary", "go.version-skew", "goroot.valid", "goroot.symlink", "goroot.goos",
	"env.consistency", "env.config", "env.functional",
	"modcache.links", "modcache.writable", "gocache.writable", "gocache.selinux",
	"cgo.toolchain", "gobin.access",
	"proxy.tls", "proxy.protocol", "module.verify", "module.vendor", "module.toolchain",
	"build.race-pprof", "build.cacheverify", "build.pie-aslr", "tls.session-reuse",
}

// All returns every check, in Order.
func All() []check.Check {
	all := slices.Concat(toolchain.Checks(), goenv.Checks(), cache.Checks(), seclabel.Checks(),
		cgo.Checks(), gobin.Checks(), proxy.Checks(), module.Checks(), build.Checks(), tlscheck.Checks())
	slices.SortStableFunc(all, func(a, b check.Check) int {
		return rank(a.ID) - rank(b.ID)
	})
	return all
}

func rank(id string) int {
	if i := slices.Index(Order, id); i >= 0 {
		return i
	}
	return len(Order)
}
