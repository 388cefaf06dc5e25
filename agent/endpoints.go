package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/patrol"
	"github.com/gopatrol/gopatrol/agent/record"
	"github.com/gopatrol/gopatrol/agent/sense"
	"github.com/gopatrol/gopatrol/plugins/host"
)

// StallFactor is how many of its periods a loop may miss before /healthz
// calls it stalled.
const StallFactor = 3

// loopHealth is one loop's liveness: when it last ticked and how often it
// should.
type loopHealth struct {
	name   string
	last   time.Time
	period time.Duration
}

// stalled names the loops that did not tick within StallFactor periods.
func stalled(now time.Time, loops []loopHealth) []string {
	var out []string
	for _, l := range loops {
		if l.last.IsZero() || now.Sub(l.last) > StallFactor*l.period {
			out = append(out, fmt.Sprintf("%s (last tick %s ago, period %s)", l.name, now.Sub(l.last).Round(time.Second), l.period))
		}
	}
	return out
}

func (a *agent) loops() []loopHealth {
	cfg := a.cfg.Load()
	a.mu.Lock()
	export := a.exportTick
	a.mu.Unlock()
	return []loopHealth{
		{"scheduler", a.sched.Status().LastTick, cfg.Checks.Every},
		{"export loop", export, a.exportPeriod()},
	}
}

func (a *agent) mux() *http.ServeMux {
	mux := http.NewServeMux()
	starting := func(w http.ResponseWriter) bool {
		if a.up.Load() {
			return false
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return true
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if starting(w) {
			return
		}
		if bad := stalled(a.clock.Now(), a.loops()); len(bad) > 0 {
			http.Error(w, "stalled: "+strings.Join(bad, "; "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if starting(w) {
			return
		}
		a.mu.Lock()
		ready := a.ready
		a.mu.Unlock()
		if !ready {
			http.Error(w, "not ready: first patrol not done", http.StatusServiceUnavailable)
			return
		}
		if a.sensorsOff != "" {
			fmt.Fprintf(w, "ready; sensors off: %s\n", a.sensorsOff)
			return
		}
		fmt.Fprintln(w, "ready; sensors attached")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		if starting(w) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(a.status())
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if starting(w) {
			return
		}
		if a.provider.PrometheusHandler() == nil {
			http.Error(w, "the Prometheus exporter is off (OTEL_METRICS_EXPORTER=prometheus turns it on)", http.StatusNotFound)
			return
		}
		a.provider.PrometheusHandler().ServeHTTP(w, r)
	})
	return mux
}

// Status is the /status document.
type Status struct {
	Version    string              `json:"version"`
	Config     string              `json:"config"`
	Started    time.Time           `json:"started"`
	Ready      bool                `json:"ready"`
	SensorsOff string              `json:"sensors_off,omitempty"`
	Sensors    *sense.Snapshot     `json:"sensors,omitempty"`
	Schedule   *ScheduleStatus     `json:"schedule,omitempty"`
	LastPatrol *PatrolStatus       `json:"last_patrol,omitempty"`
	Probes     []record.ProbeState `json:"probes"`
	Detection  *host.Report        `json:"detection,omitempty"`
	Export     ExportStatus        `json:"export"`
	Reloads    map[string]int      `json:"reloads"`
	// Rules is the rule engine's state: group scores, firing series.
	Rules *patrol.Status `json:"rules,omitempty"`
	// Environments is the inventory of the Go environments builds use.
	Environments *EnvsStatus `json:"environments,omitempty"`
}

// PatrolStatus is the last patrol: its set, when, and its report.
type PatrolStatus struct {
	Set    CheckSet     `json:"set"`
	At     time.Time    `json:"at"`
	Report check.Report `json:"report"`
}

// ExportStatus is the export loop's last tick and error.
type ExportStatus struct {
	Endpoint  string    `json:"endpoint"`
	LastTick  time.Time `json:"last_tick"`
	LastError string    `json:"last_error,omitempty"`
}

func (a *agent) status() Status {
	cfg := a.cfg.Load()
	a.mu.Lock()
	st := Status{Version: a.opts.Version, Config: cfg.File, Started: a.started, Ready: a.ready,
		SensorsOff: a.sensorsOff, Probes: a.probes, Detection: a.detection,
		Export:  ExportStatus{LastTick: a.exportTick, LastError: a.exportErr},
		Reloads: map[string]int{}}
	for k, v := range a.reloads {
		st.Reloads[k] = v
	}
	if a.lastReport != nil {
		st.LastPatrol = &PatrolStatus{Set: a.lastSet, At: a.lastRun, Report: *a.lastReport}
	}
	a.mu.Unlock()
	st.Export.Endpoint = a.provider.Endpoint()
	if a.agg != nil {
		s := a.agg.Snapshot()
		st.Sensors = &s
	}
	sched := a.sched.Status()
	st.Schedule = &sched
	st.Rules = a.rulesStatus()
	st.Environments = a.envsStatus()
	return st
}
