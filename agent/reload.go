package agent

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/metric"

	"github.com/gopatrol/gopatrol/agent/logging"
	"github.com/gopatrol/gopatrol/metricdef"
)

// setLevel applies cfg's (validated) log level.
func (a *agent) setLevel(cfg Config) {
	o, _ := logging.Parse("json", cfg.Log.Level)
	a.level.Set(o.Level)
}

// reload re-reads the config file on SIGHUP. The new config replaces the
// old one as a whole or not at all; keys that only take effect at start
// are reported as needing a restart.
func (a *agent) reload() {
	old := a.cfg.Load()
	next, err := Load(old.File, a.opts.Flags)
	result := "ok"
	if err != nil {
		result = "failed"
		a.log.Error("reload refused; the running config stays", "err", err)
	} else {
		if restart := restartKeys(*old, next); len(restart) > 0 {
			a.log.Warn("reload: these keys take effect at the next start", "keys", restart)
		}
		a.setLevel(next)
		a.cfg.Store(&next)
		a.sched.SetSchedule(a.schedule(next))
	}
	a.reloadRules(a.cfg.Load())
	a.mu.Lock()
	a.reloads[result]++
	a.mu.Unlock()
	a.self.reloads.Add(context.Background(), 1, metric.WithAttributes(metricdef.AttrReloadResult.String(result)))
	// Logged once /status counts it: whoever reads the line and then
	// /status sees the reload there.
	if err == nil {
		a.log.Info("config reloaded", "config", next.File)
	}
}

// restartKeys names the keys that differ and are read only at start.
func restartKeys(old, next Config) []string {
	var keys []string
	add := func(changed bool, key string) {
		if changed {
			keys = append(keys, key)
		}
	}
	add(old.Listen != next.Listen, "listen")
	add(old.HostRoot != next.HostRoot, "host_root")
	add(old.StateDir != next.StateDir, "state_dir")
	add(old.Go != next.Go, "go")
	add(old.Checks.Dir != next.Checks.Dir || old.Checks.AsUser != next.Checks.AsUser, "checks.dir/as_user")
	add(fmt.Sprint(old.Sensors) != fmt.Sprint(next.Sensors), "sensors")
	add(old.Traces != next.Traces, "traces")
	add(old.Envs != next.Envs, "environments")
	add(old.Plugins != next.Plugins, "plugins")
	add(fmt.Sprint(old.Collect) != fmt.Sprint(next.Collect), "collect")
	add(old.K8s != next.K8s, "kubernetes")
	add(old.Metrics != next.Metrics, "metrics")
	add(fmt.Sprint(old.Rules, old.Notify, old.Sources) != fmt.Sprint(next.Rules, next.Notify, next.Sources), "rules/notify/sources (rules.dir is re-read)")
	return keys
}
