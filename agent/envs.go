package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/inventory"
	"github.com/gopatrol/gopatrol/agent/patrol"
	"github.com/gopatrol/gopatrol/bpf"
)

// EnvsConfig is the patrol of the Go environments builds really use
// (docs/environments.md): learned from the sensors' exec events, each
// checked with the default set as its user, with its variables, in its
// container.
type EnvsConfig struct {
	Enabled bool `yaml:"enabled"`
	// Limit is the most environments kept (least recently seen evicted).
	Limit int `yaml:"limit"`
	// Every is how often each environment is patrolled again; a new or
	// changed one is patrolled at once.
	Every time.Duration `yaml:"every"`
	// ForgetAfter drops an environment no go command used for that long
	// (a "disappeared" change).
	ForgetAfter time.Duration `yaml:"forget_after"`
	// Parallel is how many environments are patrolled at once.
	Parallel int `yaml:"parallel"`
	// Nice is the niceness the patrols' commands run at (0 to 19; 0:
	// the agent's), so that the builds beside them keep their speed.
	Nice int `yaml:"nice"`
	// Idle runs the patrols' commands under SCHED_IDLE as well: any
	// other task that wakes takes the CPU from them at once, the kernel
	// places a waking build on a CPU that runs only them as on an idle
	// one, and their I/O is of the idle class.
	Idle bool `yaml:"sched_idle"`
}

// DefaultEnvNice is the niceness of environment patrols: the lowest
// priority, under which a build beside one loses at most about 1.5 % of a
// contended CPU (a weight of 15 against 1024) instead of half of it.
const DefaultEnvNice = 19

// DefaultEnvs are the environment patrol's defaults.
func DefaultEnvs() EnvsConfig {
	return EnvsConfig{Enabled: true, Limit: inventory.DefaultLimit, Every: 5 * time.Minute, ForgetAfter: 24 * time.Hour, Parallel: 2, Nice: DefaultEnvNice, Idle: true}
}

func (c EnvsConfig) validate(file string) error {
	bad := func(key, format string, a ...any) error {
		return &ConfigError{File: file, Key: "environments." + key, Msg: fmt.Sprintf(format, a...)}
	}
	switch {
	case c.Limit < 1 || c.Limit > 100_000:
		return bad("limit", "%d: want from 1 to 100000 environments", c.Limit)
	case c.Every < time.Second:
		return bad("every", "%v: want a duration of at least 1s", c.Every)
	case c.ForgetAfter < time.Minute:
		return bad("forget_after", "%v: want a duration of at least 1m", c.ForgetAfter)
	case c.Parallel < 1 || c.Parallel > 64:
		return bad("parallel", "%d: want from 1 to 64 patrols at once", c.Parallel)
	case c.Nice < 0 || c.Nice > 19:
		return bad("nice", "%d: want a niceness from 0 (the agent's priority) to 19 (the lowest)", c.Nice)
	}
	return nil
}

// AuditEnvironment is the audit log's kind for an environment that
// appeared, changed, disappeared or was evicted (the line's change).
const AuditEnvironment = "environment"

// envPatrol is the agent's inventory of environments and their patrol.
type envPatrol struct {
	cfg     EnvsConfig
	inv     *inventory.Inventory
	capture inventory.Capturer
	runner  func() check.Runner // checks.timeout and proof_ttl, as reloaded
	audit   *patrol.Audit
	state   string
	log     *slog.Logger
	wake    chan struct{}
	// checks are the default set under the current skip list (it may
	// change on SIGHUP).
	checks func() []check.Check

	captured, missed atomic.Uint64
	// missedWhy is the last capture error (a process gone before it was
	// read), for /status.
	missedWhy atomic.Pointer[string]
	// pending are the changes not yet in the audit log; flush wakes
	// the writer.
	pendingMu sync.Mutex
	pending   []inventory.Change
	flush     chan struct{}
	// rules is the rule engine once it runs: an environment that leaves
	// the inventory ends its series there.
	rules atomic.Pointer[patrol.Engine]
}

// withEnvs tees the exec events of go commands into the inventory and
// starts the patrol loop, which lives as long as the event stream. Off
// without sensors or with environments.enabled false.
func (a *agent) withEnvs(events <-chan bpf.Event) <-chan bpf.Event {
	cfg := a.plan.cfg
	if !cfg.Envs.Enabled || a.sensor == nil {
		return events
	}
	ep := &envPatrol{
		cfg: cfg.Envs, log: a.log.With("part", "environments"),
		inv:   inventory.New(inventory.Config{Limit: cfg.Envs.Limit}),
		audit: &patrol.Audit{Path: patrol.AuditPath(cfg.StateDir)},
		state: inventory.StatePath(cfg.StateDir), wake: make(chan struct{}, 1), flush: make(chan struct{}, 1),
		checks: func() []check.Check { return a.checks(SetDefault, a.cfg.Load()) },
		runner: func() check.Runner { return a.runner(a.cfg.Load()) },
	}
	if st, err := inventory.Load(ep.state); err == nil {
		ep.inv.Restore(st)
	} else if !errors.Is(err, inventory.ErrNoState) {
		a.log.Warn("environment inventory not restored; starting empty", "err", err)
	}
	a.envs = ep
	out := make(chan bpf.Event, cap(events))
	ctx, cancel := context.WithCancel(context.Background())
	go ep.loop(ctx)
	go ep.writer(ctx)
	go func() {
		defer close(out)
		defer cancel()
		for ev := range events {
			if x, ok := ev.(*bpf.EnvEvent); ok {
				ep.exec(x)
				continue // its environment is cleared: no one else needs it
			}
			out <- ev
		}
	}()
	a.log.Info("environment patrol on", "limit", cfg.Envs.Limit, "every", cfg.Envs.Every.String())
	return out
}

// exec records the environment of a go command that just started, from
// what the sensors streamed at its exec and, for what they do not stream,
// /proc of the process or its parent: read at once, while they live.
func (ep *envPatrol) exec(x *bpf.EnvEvent) {
	defer x.ClearEnviron()
	if int(x.PPID) == os.Getpid() {
		// The agent's own checks (its patrols of these environments
		// too): recording them would patrol the patrols.
		return
	}
	env, err := ep.capture.CaptureExec(inventory.Exec{
		PID: int(x.PID), PPID: int(x.PPID), UID: x.UID, MountNS: x.MountNS, CgroupID: x.CgroupID,
		Go: x.Exe, Cwd: x.Cwd, Environ: x.Environ, EnvironTruncated: x.EnvironTruncated,
	})
	if err != nil {
		ep.missed.Add(1)
		why := err.Error()
		ep.missedWhy.Store(&why)
		ep.log.Debug("environment not read", "pid", x.PID, "err", err)
		return
	}
	if env.FromDoctor() {
		return
	}
	ep.captured.Add(1)
	_, changes := ep.inv.Observe(env, time.Now(), int(x.PPID), int(x.PID))
	if len(changes) > 0 {
		ep.changed(changes)
		poke(ep.wake)
	}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// changed logs changes and queues them for the writer: the event
// pipeline does not wait for the audit log's and state file's fsyncs.
func (ep *envPatrol) changed(changes []inventory.Change) {
	for _, c := range changes {
		ep.log.Info("environment "+c.Kind, "env", c.ID, "previous", c.Previous, "place", c.Place,
			"fields", strings.Join(c.Fields, ","), "detail", c.Detail)
	}
	ep.pendingMu.Lock()
	ep.pending = append(ep.pending, changes...)
	ep.pendingMu.Unlock()
	poke(ep.flush)
}

// writer writes the queued changes to the audit log and the inventory to
// the state file, whenever flush is signalled, until ctx ends (then once
// more).
func (ep *envPatrol) writer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			ep.write()
			return
		case <-ep.flush:
			ep.write()
		}
	}
}

func (ep *envPatrol) write() {
	ep.pendingMu.Lock()
	changes := ep.pending
	ep.pending = nil
	ep.pendingMu.Unlock()
	if eng := ep.rules.Load(); eng != nil {
		for _, c := range changes {
			if c.Kind == inventory.Disappeared || c.Kind == inventory.Evicted {
				eng.ForgetEnvironment(c.ID, c.Kind)
			}
		}
	}
	if len(changes) > 0 {
		ents := make([]patrol.AuditEntry, 0, len(changes))
		for _, c := range changes {
			ents = append(ents, patrol.AuditEntry{Time: c.Time.UTC(), Kind: AuditEnvironment, ID: c.ID, Change: c.Kind, Detail: c.Describe()})
		}
		if err := ep.audit.Append(ents...); err != nil {
			ep.log.Error("audit log not written", "err", err)
		}
	}
	now := time.Now()
	if err := inventory.Save(ep.state, ep.inv.Snapshot(now, now.Add(-24*time.Hour))); err != nil {
		ep.log.Error("inventory not saved", "err", err)
	}
}

// loop patrols the environments that are due: new, changed (a new ID),
// or not patrolled for cfg.Every; and forgets the ones not seen for
// cfg.ForgetAfter.
func (ep *envPatrol) loop(ctx context.Context) {
	tick := time.NewTicker(min(ep.cfg.Every, 30*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ep.wake:
		case <-tick.C:
		}
		if gone := ep.inv.Sweep(time.Now(), ep.cfg.ForgetAfter); len(gone) > 0 {
			ep.changed(gone)
		}
		ep.round(ctx)
	}
}

// envWalkReuse is how long a round reuses the fingerprint of a GOROOT's
// standard library (check.Proofs.WalkReuse).
const envWalkReuse = 30 * time.Second

// round patrols the due environments, cfg.Parallel at a time.
func (ep *envPatrol) round(ctx context.Context) {
	now := time.Now()
	var due []inventory.Entry
	for _, e := range ep.inv.Entries() {
		if e.Patrol == nil || now.Sub(e.Patrol.At) >= ep.cfg.Every {
			due = append(due, e)
		}
	}
	run := ep.runner()
	if run.Proofs != nil {
		// The round fingerprints environments that often share a GOROOT:
		// one walk of its standard library stands for the others.
		run.Proofs.WalkReuse = envWalkReuse
	}
	pat := inventory.Patroller{Checks: ep.checks(), Runner: run, Nice: ep.cfg.Nice, Idle: ep.cfg.Idle}
	sem := make(chan struct{}, ep.cfg.Parallel)
	var wg sync.WaitGroup
	for _, e := range due {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r, _ := pat.Patrol(ctx, e)
			ep.inv.SetPatrol(e.ID, r)
			// Each result reaches the state file (what `gopatrol agent
			// status` reads) without waiting for the round's slowest.
			poke(ep.flush)
			problems := make([]string, len(r.Problems))
			for i, p := range r.Problems {
				problems[i] = string(p.Status) + " " + p.ID
			}
			lvl := slog.LevelInfo
			if !r.Healthy() {
				lvl = slog.LevelWarn
			}
			ep.log.Log(ctx, lvl, "environment patrolled", "env", e.ID, "outcome", r.Outcome, "reason", r.Reason,
				"root", r.Root, "problems", strings.Join(problems, "; "), "duration", r.Duration.Round(time.Millisecond).String())
		})
	}
	wg.Wait()
}

// EnvsStatus is /status's environments section.
type EnvsStatus struct {
	Limit    int    `json:"limit"`
	Count    int    `json:"count"`
	Captured uint64 `json:"captured"`
	// Missed counts go commands whose environment could not be read (the
	// process already gone); LastMissed says why, for the last one.
	Missed       uint64             `json:"missed"`
	LastMissed   string             `json:"last_missed,omitempty"`
	Environments []inventory.Entry  `json:"environments"`
	Changes      []inventory.Change `json:"changes_24h"`
	StateFile    string             `json:"state_file"`
}

func (a *agent) envsStatus() *EnvsStatus {
	ep := a.envs
	if ep == nil {
		return nil
	}
	st := &EnvsStatus{Limit: ep.cfg.Limit, Count: ep.inv.Len(), Captured: ep.captured.Load(), Missed: ep.missed.Load(),
		Environments: ep.inv.Entries(), Changes: ep.inv.Changes(time.Now().Add(-24 * time.Hour)), StateFile: ep.state}
	if w := ep.missedWhy.Load(); w != nil {
		st.LastMissed = *w
	}
	return st
}

// envChanges is the escalation ticket's section on the environments:
// their changes of the last 24 hours (only those of environment id when
// not ""), "" when none.
func (a *agent) envChanges(id string) string {
	if a.envs == nil {
		return ""
	}
	cs := a.envs.inv.Changes(time.Now().Add(-24 * time.Hour))
	if id != "" {
		cs = slices.DeleteFunc(cs, func(c inventory.Change) bool { return c.ID != id && c.Previous != id })
	}
	if len(cs) == 0 {
		return ""
	}
	const most = 50
	var b strings.Builder
	b.WriteString("\nGo environments changed in the last 24 hours (gopatrol agent status lists them):\n")
	for i, c := range cs[max(0, len(cs)-most):] {
		if i == 0 && len(cs) > most {
			fmt.Fprintf(&b, "- (%d earlier changes left out)\n", len(cs)-most)
		}
		fmt.Fprintf(&b, "- %s %s\n", c.Time.UTC().Format(time.RFC3339), c.Describe())
	}
	return b.String()
}

// Environments are the latest patrols of the inventory's environments,
// for the rule engine's check rules (patrol.EnvironmentSource). One not
// patrolled yet is left out; one that could not be entered, or whose
// toolchain could not be resolved, is Unknown: its rules keep their
// last state.
func (ep *envPatrol) Environments() []patrol.EnvironmentResult {
	checks := ep.checks()
	var out []patrol.EnvironmentResult
	for _, e := range ep.inv.Entries() {
		r := e.Patrol
		if r == nil {
			continue
		}
		er := patrol.EnvironmentResult{ID: e.ID, Identity: envIdentity(e.Env)}
		switch {
		case r.Outcome == inventory.OutcomeUnreachable:
			er.Unknown = "unreachable: " + r.Reason
		case r.Summary == nil:
			er.Unknown = r.Outcome + ": " + r.Reason // no check ran
		default:
			// A check is a problem, else it passed (or was skipped).
			for _, c := range checks {
				res := check.Result{ID: c.ID, Status: check.Pass}
				if i := slices.IndexFunc(r.Problems, func(p inventory.Problem) bool { return p.ID == c.ID }); i >= 0 {
					res.Status, res.Summary = r.Problems[i].Status, r.Problems[i].Summary
				}
				er.Results = append(er.Results, res)
			}
		}
		out = append(out, er)
	}
	return out
}

// envIdentity is who and where an environment is, for the annotations of
// its alerts: user, container, pod, mount namespace, go binary and
// version. Never a variable's value (a GOPROXY can hold a token).
func envIdentity(env inventory.Env) map[string]string {
	id := map[string]string{"user.id": strconv.FormatUint(uint64(env.UID), 10), "process.executable.path": env.Go}
	set := func(k, v string) {
		if v != "" {
			id[k] = v
		}
	}
	set("go.version", env.Version)
	set("container.id", env.Container.ID)
	set("k8s.pod.uid", env.Container.Pod)
	if env.Container.MountNS != 0 {
		id["mount_ns"] = strconv.FormatUint(env.Container.MountNS, 10)
	}
	return id
}

// envSource is the rule engine's view of the environments' patrols, nil
// when they are off.
func (a *agent) envSource() patrol.EnvironmentSource {
	if a.envs == nil {
		return nil
	}
	return a.envs
}

// envDetails is the long form of an environment's alert: which one, and
// where to look.
func envDetails(id string, identity map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Go environment %s", id)
	for _, k := range slices.Sorted(maps.Keys(identity)) {
		fmt.Fprintf(&b, ", %s %s", k, identity[k])
	}
	fmt.Fprintf(&b, ".\n`gopatrol agent status` lists it; `gopatrol check --env %s` reruns the doctor in it.\n", id)
	return b.String()
}

// envDiagnosis is an escalated environment's diagnosis: the full doctor
// in it, entered as its patrols are. where says which environment, or
// why there is no report.
func (a *agent) envDiagnosis(ctx context.Context, id string, cfg *Config) (check.Report, string) {
	entries := a.envs.inv.Entries()
	i := slices.IndexFunc(entries, func(e inventory.Entry) bool { return e.ID == id })
	if i < 0 {
		return check.Report{}, fmt.Sprintf("Go environment %s is no longer in the inventory: no diagnosis.\n", id)
	}
	e := entries[i]
	where := envDetails(id, envIdentity(e.Env))
	r, rep := inventory.Patroller{Checks: a.checks(SetFull, cfg), Runner: check.Runner{Timeout: cfg.Checks.Timeout}, Nice: a.envs.cfg.Nice, Idle: a.envs.cfg.Idle}.Patrol(ctx, e)
	if rep == nil {
		return check.Report{}, where + fmt.Sprintf("The diagnosis could not run in it: %s: %s\n", r.Outcome, r.Reason)
	}
	return *rep, where + "The diagnosis ran in it, as its user, with its variables.\n"
}
