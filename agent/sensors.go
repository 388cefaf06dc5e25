package agent

import (
	"context"
	"fmt"

	"github.com/gopatrol/gopatrol/agent/fileclass"
	"github.com/gopatrol/gopatrol/agent/sense"
	"github.com/gopatrol/gopatrol/bpf"
	"github.com/gopatrol/gopatrol/bpf/tlsprobe"
)

// startSensors attaches the eBPF sensors and the TLS probes. Without BPF
// the agent degrades ("sensors off", with why) unless sensors.require.
func (a *agent) startSensors() error {
	cfg := a.plan.cfg
	if !cfg.Sensors.Enabled {
		a.sensorsOff = "disabled by config (sensors.enabled: false)"
		a.log.Warn("sensors off", "reason", a.sensorsOff)
		return nil
	}
	bc := bpf.Config{
		GoNames: cfg.Sensors.GoNames, Classes: fileclass.Of(a.plan.toolchain),
		RingSize: cfg.Sensors.RingSize, RunTime: cfg.Sensors.RunTime, Logger: a.log,
		Environ: cfg.Envs.Enabled, // the inventory reads it (envs.go)
	}
	if cfg.HostRoot != "/" && a.plan.toolchain.Err == nil {
		// Uprobes attach by inode: the host's go, reached through the
		// mount, is the file the host's processes run.
		bc.GoTools = bpf.ToolchainBinaries(a.plan.target.Path(a.plan.toolchain.Go))
	}
	s, err := bpf.Open(bc)
	if err != nil {
		if cfg.Sensors.Require {
			return fmt.Errorf("sensors required (sensors.require / --require-sensors) but not available: %w", err)
		}
		a.sensorsOff = err.Error()
		a.log.Warn("sensors off", "reason", a.sensorsOff)
		return nil
	}
	a.sensor = s
	if cfg.Sensors.TLS {
		p, err := tlsprobe.Attach(s, tlsprobe.Config{Logger: a.log})
		if err != nil {
			a.log.Warn("TLS handshakes not observed", "err", err)
		} else {
			for _, sk := range p.Skipped {
				a.log.Warn("TLS probe not attached", "path", sk.Path, "reason", sk.Reason)
			}
		}
	}
	a.agg = sense.New(a.rec.Instruments(), a.log)
	if err := a.startBuildTraces(a.res); err != nil {
		return err
	}
	go a.agg.Run(context.Background(), a.withEnvs(a.withBuildTraces(s.Events())))
	a.log.Info("sensors attached", "go_tools", len(s.GoTools()))
	return nil
}

// closeSensors detaches every program (no program, link or map of the
// agent stays in the kernel) and records the last counters.
func (a *agent) closeSensors() {
	if a.sensor == nil {
		return
	}
	if st, err := a.sensor.Stats(); err == nil {
		a.agg.Counters(context.Background(), st)
	}
	if err := a.sensor.Close(); err != nil {
		a.log.Error("sensors: detach", "err", err)
	}
	a.stopBuildTraces(context.Background())
}
