package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/catalog"
	"github.com/gopatrol/gopatrol/otelcfg"
)

// plan is everything Run needs, resolved before anything starts.
type plan struct {
	cfg       Config
	otel      otelcfg.Config
	target    *check.Target
	toolchain *check.Toolchain
	// sets are the checks of each patrol.
	sets map[CheckSet][]check.Check
}

// resolve reads and validates everything without starting anything: the
// OTEL_* environment, the host's target and toolchain, the check sets. A
// *ConfigError is the caller's to turn into exit 2.
func resolve(ctx context.Context, cfg Config, lookup func(string) (string, bool)) (*plan, error) {
	oc, err := otelcfg.FromEnv(lookup)
	if err != nil {
		return nil, &ConfigError{Key: "environment", Msg: err.Error()}
	}
	if oc.File != "" {
		// otelconf would re-read it and drop the resource built here
		// (otelcfg.New refuses while it is set); FromEnv has read it.
		os.Unsetenv("OTEL_CONFIG_FILE")
	}
	p := &plan{cfg: cfg, otel: oc, sets: map[CheckSet][]check.Check{}}
	all := catalog.All()
	for set, slow := range map[CheckSet]bool{SetDefault: false, SetFull: true} {
		// The skip list applies per patrol (it may change on reload);
		// Validate has checked its IDs.
		checks, err := check.Select(all, nil, nil, slow)
		if err != nil {
			return nil, &ConfigError{File: cfg.File, Key: "checks.skip", Msg: err.Error()}
		}
		p.sets[set] = checks
	}
	if p.target, err = hostTarget(cfg); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tc, err := check.ResolveToolchain(rctx, p.target, cfg.Go)
	if err != nil {
		if errors.Is(err, check.ErrNotGo) || cfg.Go != "" {
			return nil, &ConfigError{File: cfg.File, Key: "go", Msg: err.Error()}
		}
		return nil, fmt.Errorf("resolve the toolchain: %w", err)
	}
	p.toolchain = tc
	return p, nil
}

// hostTarget is the machine the checks inspect: the node's root at
// cfg.HostRoot, its user, its module directory.
func hostTarget(cfg Config) (*check.Target, error) {
	t, err := check.LocalTarget()
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(cfg.HostRoot); err != nil || !fi.IsDir() {
		return nil, &ConfigError{File: cfg.File, Key: "host_root", Msg: fmt.Sprintf("%s: not a directory", cfg.HostRoot)}
	}
	t.Root = cfg.HostRoot
	t.Dir = "/"
	if cfg.Checks.Dir != "" {
		if fi, err := os.Stat(t.Path(cfg.Checks.Dir)); err != nil || !fi.IsDir() || !filepath.IsAbs(cfg.Checks.Dir) {
			return nil, &ConfigError{File: cfg.File, Key: "checks.dir", Msg: fmt.Sprintf("%s: want an absolute directory of the host", cfg.Checks.Dir)}
		}
		t.Dir = cfg.Checks.Dir
	}
	user := cfg.Checks.AsUser
	if user == "" {
		user = strconv.Itoa(os.Getuid())
	}
	if u, err := t.LookupUser(user); err == nil {
		t.User = u
	} else if cfg.Checks.AsUser != "" {
		return nil, &ConfigError{File: cfg.File, Key: "checks.as_user", Msg: fmt.Sprintf("%s: %v", cfg.Checks.AsUser, err)}
	}
	return t, nil
}
