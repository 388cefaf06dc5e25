package patrol

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the episode and escalation settings.
const (
	DefaultResolveAfter  = 3
	DefaultEscalateBelow = 70
	DefaultEscalateAfter = 3
	DefaultEvery         = 5 * time.Minute // the source's incremental patrol
	DefaultTimeout       = 10 * time.Second
	scoreHistoryLen      = 20
)

// Config is what the engine is given by its caller. Only StateDir is
// required for persistence; the zero values of the rest are the defaults.
type Config struct {
	// StateDir holds state.json (baselines, episodes, report counts) and
	// audit.jsonl. Empty keeps state in memory only.
	StateDir string
	// HostID is the node's stable identity, hashed with the rule name to
	// place the node in or out of a canary.
	HostID string
	// ResolveAfter is how many consecutive healthy evaluations end a breach
	// episode, so that flapping does not restart its clock.
	ResolveAfter int
	// EscalateBelow and EscalateAfter: a group escalates when its score is
	// under EscalateBelow for EscalateAfter consecutive evaluations.
	EscalateBelow float64
	EscalateAfter int
	// AllowExec lets exec rules run commands.
	AllowExec bool
	// Sources builds the Source of rule types this package does not
	// evaluate itself (promql, sql).
	Sources map[string]SourceFactory
	// Checks runs the doctor's checks for check rules.
	Checks CheckRunner
	// Environments gives check rules the latest patrols of the Go
	// environments builds use (optional): each environment's results are
	// series of their own, labelled LabelEnvironment.
	Environments EnvironmentSource
	// Metrics gives metric rules the agent's own instruments.
	Metrics MetricSource
	// HTTPClient, Resolver and TLSRoots serve http, dns and tls rules
	// (defaults: a plain client, net.DefaultResolver, the system roots).
	HTTPClient *http.Client
	Resolver   *net.Resolver
	TLSRoots   *x509.CertPool
	// Events receives what the daemon and notify act on.
	Events func(Event)
	// TraceID returns the trace ID of the patrol cycle's span in ctx (the
	// daemon starts one span per cycle), put on every event so a ticket can
	// name it. Optional.
	TraceID func(ctx context.Context) string
	// Instruments receives every evaluation's figures (optional).
	Instruments Recorder
	// Lenient turns a probe that cannot be built (an unregistered type,
	// exec not allowed) into an error of each of its evaluations instead of
	// refusing the set: for `gopatrol rules eval`, not for the daemon.
	Lenient bool
	// Remediation is the node's opt-in, rate limit and fix runner for
	// rules with remediate or webhook actions (action.go).
	Remediation RemediationConfig
	// Concurrency bounds how many probes run at once (16 when zero).
	Concurrency int
	Logger      *slog.Logger
	Now         func() time.Time
}

// EventKind says what an Event is.
type EventKind string

const (
	EventFire     EventKind = "fire"     // a live rule's episode reached `for` breaches
	EventResolve  EventKind = "resolve"  // that episode ended
	EventEscalate EventKind = "escalate" // a group's score stayed low: diagnose and open a ticket
	EventRecover  EventKind = "recover"  // the escalated group's score recovered: resolve the ticket
)

// Event is one decision of the engine for the daemon and notify to act on.
// Shadow rules, and canary rules on nodes outside the canary, never produce
// fire or resolve events.
type Event struct {
	Kind   EventKind         `json:"kind"`
	Time   time.Time         `json:"time"`
	Rule   string            `json:"rule,omitempty"`
	Stage  Stage             `json:"stage,omitempty"`
	Group  string            `json:"group"`
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations describe the series (an environment's user and
	// container), for the alert's annotations.
	Annotations map[string]string `json:"annotations,omitempty"`
	Notify      []string          `json:"notify,omitempty"`
	Value       float64           `json:"value"`
	Threshold   string            `json:"threshold,omitempty"`
	Baseline    *Band             `json:"baseline,omitempty"`
	Message     string            `json:"message,omitempty"`
	Since       time.Time         `json:"since,omitzero"`
	TraceID     string            `json:"trace_id,omitempty"`
	// Escalation events: the group's score, its recent history and the
	// series breaching now.
	Score     float64      `json:"score"`
	History   []ScorePoint `json:"history,omitempty"`
	Breaching []Result     `json:"breaching,omitempty"`
}

// Band is a baseline at the time of an evaluation.
type Band struct {
	Mean float64 `json:"mean"`
	Lo   float64 `json:"lo"`
	Hi   float64 `json:"hi"`
	N    int     `json:"samples"`
}

// ScorePoint is one score of a group.
type ScorePoint struct {
	Time  time.Time `json:"time"`
	Score float64   `json:"score"`
}

// Result is one evaluation of one rule and label set.
type Result struct {
	Rule      string            `json:"rule"`
	Type      string            `json:"type"`
	Stage     Stage             `json:"stage"` // effective on this node
	Group     string            `json:"group"`
	Labels    map[string]string `json:"labels,omitempty"`
	Value     float64           `json:"value"`
	Threshold string            `json:"threshold"`
	Baseline  *Band             `json:"baseline,omitempty"`
	Breach    bool              `json:"breach"`
	Firing    bool              `json:"firing"`
	Since     time.Time         `json:"since,omitzero"`
	Message   string            `json:"message,omitempty"`
	Error     string            `json:"error,omitempty"`
	Duration  time.Duration     `json:"duration_ns"`
}

// GroupScore is the health score of one group of labels.
type GroupScore struct {
	Group     string  `json:"group"`
	Score     float64 `json:"score"`
	Below     int     `json:"below"`
	Escalated bool    `json:"escalated"`
}

// Cycle is what one evaluation produced.
type Cycle struct {
	Time    time.Time    `json:"time"`
	Results []Result     `json:"results"`
	Scores  []GroupScore `json:"scores"`
	Events  []Event      `json:"events,omitempty"`
	// Actions are the remediate and webhook actions of rules that fired.
	Actions []ActionResult `json:"actions,omitempty"`
}

type compiled struct {
	set    *RuleSet
	probes map[string]Probe
}

// Engine evaluates a rule set. Reload swaps the set atomically; Evaluate
// calls are serialised.
type Engine struct {
	cfg   Config
	set   atomic.Pointer[compiled]
	cycle sync.Mutex // one cycle at a time
	mu    sync.Mutex // guards state and windows
	state *State
	win   map[string]*window // metric rule windows, by rule name and query
	audit *Audit
	// pending are this cycle's firings with actions, run after the
	// cycle's state is saved.
	pending []pendingAction
	// override replaces probes in rule unit tests.
	override func(Rule) Probe
}

// New makes an engine and loads its persisted state. It has no rules until
// Load.
func New(cfg Config) (*Engine, error) {
	if cfg.ResolveAfter <= 0 {
		cfg.ResolveAfter = DefaultResolveAfter
	}
	if cfg.EscalateBelow == 0 {
		cfg.EscalateBelow = DefaultEscalateBelow
	}
	if cfg.EscalateAfter <= 0 {
		cfg.EscalateAfter = DefaultEscalateAfter
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	st, err := LoadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, state: st, win: map[string]*window{}}
	if cfg.StateDir != "" {
		e.audit = &Audit{Path: AuditPath(cfg.StateDir), Now: cfg.Now}
	}
	return e, nil
}

// Audit returns the engine's audit log (nil without a state directory), for
// the daemon to append notification, silence and ticket lines.
func (e *Engine) Audit() *Audit { return e.audit }

// Rules returns the rule set in force (nil before the first Load).
func (e *Engine) Rules() *RuleSet {
	if c := e.set.Load(); c != nil {
		return c.set
	}
	return nil
}

// Load reads dir, builds every rule's probe, and swaps the new set in. On
// any error the set in force stays, and the error says why (Problems for a
// bad file). Every attempt is written to the audit log.
func (e *Engine) Load(dir string) error {
	set, err := LoadDir(dir)
	if err == nil {
		err = e.Swap(set)
	} else {
		e.auditLoad(nil, err)
	}
	return err
}

// Swap installs a loaded set. Probes that cannot be built (an unregistered
// type, exec not allowed, a glob matching no check) refuse the whole set.
func (e *Engine) Swap(set *RuleSet) error {
	c := &compiled{set: set, probes: make(map[string]Probe, len(set.Rules))}
	var probs Problems
	for _, r := range set.Rules {
		p, err := e.newProbe(r)
		if err != nil && e.cfg.Lenient {
			p, err = errProbe{err}, nil
		}
		if err != nil {
			probs = append(probs, Problem{File: r.File, Line: r.Line, Rule: r.Name, Field: "type", Detail: err.Error()})
			continue
		}
		c.probes[r.Name] = p
		if r.Remediate != "" && e.cfg.Checks != nil && !slices.Contains(e.cfg.Checks.IDs(), r.Remediate) {
			probs = append(probs, Problem{File: r.File, Line: r.Line, Rule: r.Name, Field: "remediate",
				Detail: fmt.Sprintf("%q is not a check of this agent; `gopatrol check --list` names them", r.Remediate)})
		}
	}
	if len(probs) > 0 {
		e.auditLoad(set, probs)
		return probs
	}
	e.set.Store(c)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.auditChanges(set)
	e.forget(set)
	if err := e.state.Save(e.cfg.StateDir); err != nil {
		e.cfg.Logger.Warn("patrol state not saved", "err", err)
	}
	return nil
}

// forget drops the state of rules no longer in the set. e.mu is held.
func (e *Engine) forget(set *RuleSet) {
	names := make(map[string]bool, len(set.Rules))
	for _, r := range set.Rules {
		names[r.Name] = true
	}
	for k, s := range e.state.Series {
		if !names[s.Rule] {
			delete(e.state.Series, k)
		}
	}
	for name := range e.state.Rules {
		if !names[name] {
			delete(e.state.Rules, name)
		}
	}
	for k := range e.win {
		if name, _, _ := strings.Cut(k, "\x00"); !names[name] {
			delete(e.win, k)
		}
	}
}

// EffectiveStage is a rule's stage on this node: a canary rule outside the
// node's canary share behaves as shadow.
func (e *Engine) EffectiveStage(r Rule) Stage {
	if r.Stage == StageCanary && !InCanary(e.cfg.HostID, r.Name, r.CanaryPercent) {
		return StageShadow
	}
	return r.Stage
}

// Due reports whether r is due at now: never run, its interval elapsed, or
// its daily time passed since the last run.
func (e *Engine) due(r Rule, now time.Time) bool {
	last := e.state.lastRun(r.Name)
	if last.IsZero() {
		return true
	}
	if r.At != "" {
		y, m, d := now.Date()
		at := time.Date(y, m, d, r.atHour, r.atMinute, 0, 0, now.Location())
		return !now.Before(at) && last.Before(at)
	}
	every := r.Every
	if every == 0 {
		every = DefaultEvery
	}
	return !now.Before(last.Add(every))
}

// Evaluate runs the rules that are due now and updates episodes, scores
// and escalations. It returns the cycle and sends its events.
func (e *Engine) Evaluate(ctx context.Context) (Cycle, error) { return e.evaluate(ctx, false) }

// EvaluateAll runs every rule now, due or not (`gopatrol rules eval --once`,
// the full patrol).
func (e *Engine) EvaluateAll(ctx context.Context) (Cycle, error) { return e.evaluate(ctx, true) }

type job struct {
	rule    Rule
	probe   Probe
	samples []Sample
	dur     time.Duration
}

func (e *Engine) evaluate(ctx context.Context, all bool) (Cycle, error) {
	c := e.set.Load()
	if c == nil {
		return Cycle{}, fmt.Errorf("patrol: no rules loaded")
	}
	e.cycle.Lock()
	defer e.cycle.Unlock()
	now := e.cfg.Now()
	var jobs []*job
	e.mu.Lock()
	for _, r := range c.set.Rules {
		if all || e.due(r, now) {
			jobs = append(jobs, &job{rule: r, probe: c.probes[r.Name]})
		}
	}
	e.mu.Unlock()
	// Probes run without e.mu, so a reload is not held up by a slow one.
	e.runProbes(ctx, jobs)
	e.mu.Lock()
	cyc := Cycle{Time: now}
	for _, j := range jobs {
		e.state.ruleStats(j.rule.Name).LastRun = now
		for _, s := range j.samples {
			res, ev := e.apply(j.rule, s, now)
			res.Duration = j.dur
			cyc.Results = append(cyc.Results, res)
			if ev != nil {
				cyc.Events = append(cyc.Events, *ev)
			}
		}
	}
	cyc.Scores, cyc.Events = e.score(c.set, now, cyc.Results, cyc.Events)
	err := e.state.Save(e.cfg.StateDir)
	e.mu.Unlock()
	if err != nil {
		e.cfg.Logger.Warn("patrol state not saved; baselines restart from scratch after a restart", "err", err)
	}
	if e.cfg.Instruments != nil {
		// An environment's series and group are not instruments' series:
		// environment IDs are unbounded (up to environments.limit, each
		// with every check). /status and the alerts show them.
		for _, res := range cyc.Results {
			if res.Labels[LabelEnvironment] == "" {
				e.cfg.Instruments.RecordResult(ctx, res)
			}
		}
		e.mu.Lock()
		var scores []GroupScore
		for _, g := range cyc.Scores {
			if gs := e.state.Groups[g.Group]; gs == nil || gs.Labels[LabelEnvironment] == "" {
				scores = append(scores, g)
			}
		}
		e.mu.Unlock()
		for _, g := range scores {
			e.cfg.Instruments.RecordScore(ctx, g)
		}
	}
	var traceID string
	if e.cfg.TraceID != nil {
		traceID = e.cfg.TraceID(ctx)
		for i := range cyc.Events {
			cyc.Events[i].TraceID = traceID
		}
	}
	if cyc.Actions = e.act(ctx, traceID); len(cyc.Actions) > 0 {
		e.mu.Lock()
		err := e.state.Save(e.cfg.StateDir)
		e.mu.Unlock()
		if err != nil {
			e.cfg.Logger.Warn("patrol state not saved after remediation", "err", err)
		}
	}
	if e.cfg.Events != nil {
		for _, ev := range cyc.Events {
			e.cfg.Events(ev)
		}
	}
	return cyc, nil
}

func (e *Engine) runProbes(ctx context.Context, jobs []*job) {
	sem := make(chan struct{}, e.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			j.samples = j.probe.Probe(ctx)
			j.dur = time.Since(start)
		})
	}
	wg.Wait()
}

// GroupKey names a group of labels: its sorted k=v pairs, or "default".
func GroupKey(labels map[string]string) string {
	if len(labels) == 0 {
		return "default"
	}
	keys := slices.Sorted(maps.Keys(labels))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

func seriesKey(rule string, labels map[string]string) string {
	return rule + "\x00" + GroupKey(labels)
}

// groupLabels are the labels of the score group a series of r belongs
// to: the rule's labels, and the environment's ID for an environment's
// series, so that each environment has its own score and escalation.
func groupLabels(r Rule, series map[string]string) map[string]string {
	id, ok := series[LabelEnvironment]
	if !ok {
		return r.Labels
	}
	g := maps.Clone(r.Labels)
	if g == nil {
		g = map[string]string{}
	}
	g[LabelEnvironment] = id
	return g
}

// apply judges one sample and moves its episode on.
func (e *Engine) apply(r Rule, s Sample, now time.Time) (Result, *Event) {
	labels := maps.Clone(r.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, s.Labels)
	stage := e.EffectiveStage(r)
	res := Result{Rule: r.Name, Type: r.Type, Stage: stage, Group: GroupKey(groupLabels(r, labels)), Labels: labels,
		Value: s.Value, Threshold: r.Threshold, Message: s.Message}
	st := e.state.series(seriesKey(r.Name, labels), r.Name, labels)
	stats := e.state.ruleStats(r.Name)
	if s.Err != nil {
		res.Error = s.Err.Error()
		stats.add(now, 1, 0, 1)
		res.Firing, res.Since = st.Firing, st.Since
		return res, nil
	}
	breach := false
	if r.threshold.Dynamic() {
		breach = st.Baseline.Observe(s.Value, r.threshold.Alpha, r.threshold.K, r.Baseline.Warmup)
		lo, hi := st.Baseline.Band(r.threshold.K)
		res.Baseline = &Band{Mean: st.Baseline.Mean, Lo: lo, Hi: hi, N: st.Baseline.N}
	} else {
		breach = r.threshold.Breached(s.Value)
	}
	res.Breach = breach
	st.Value = s.Value
	var ev *Event
	live := stage != StageShadow
	event := func(k EventKind) *Event {
		return &Event{Kind: k, Time: now, Rule: r.Name, Stage: stage, Group: res.Group, Labels: labels,
			Annotations: s.Annotations, Notify: r.Notify, Value: s.Value, Threshold: r.Threshold, Baseline: res.Baseline,
			Message: s.Message, Since: st.Since}
	}
	fired := 0
	if breach {
		st.Healthy = 0
		st.Breaches++
		if st.Since.IsZero() {
			st.Since = now
		}
		if !st.Firing && st.Breaches >= r.For {
			st.Firing = true
			fired = 1
			fire := event(EventFire)
			if live {
				ev = fire
			}
			e.noteAction(r, st, stage, *fire)
		}
	} else if !st.Since.IsZero() {
		st.Breaches = 0
		st.Healthy++
		if st.Healthy >= e.cfg.ResolveAfter {
			if st.Firing && live {
				ev = event(EventResolve)
			}
			st.Since, st.Firing, st.Healthy, st.Acted = time.Time{}, false, 0, false
		}
	}
	stats.add(now, 1, fired, 0)
	res.Firing, res.Since = st.Firing, st.Since
	return res, ev
}

// Score is the health score of breaching rules: max(0, 100 − Σ wᵢ·log2(dᵢ+1))
// with dᵢ the minutes each firing episode has lasted.
func Score(weights, minutes []float64) float64 {
	s := 100.0
	for i, w := range weights {
		s -= w * math.Log2(minutes[i]+1)
	}
	return math.Max(0, s)
}

// score computes every group's score from all live series (not only those
// evaluated this cycle) and decides escalation.
func (e *Engine) score(set *RuleSet, now time.Time, results []Result, events []Event) ([]GroupScore, []Event) {
	rules := make(map[string]Rule, len(set.Rules))
	groups := map[string]bool{}
	for _, r := range set.Rules {
		rules[r.Name] = r
		if e.EffectiveStage(r) != StageShadow {
			groups[GroupKey(r.Labels)] = true
		}
	}
	// An environment's group is scored while it has series, and once more
	// after, to recover an escalated one (ForgetEnvironment).
	envGroups := map[string]map[string]string{}
	for _, s := range e.state.Series {
		if r, ok := rules[s.Rule]; ok && s.Labels[LabelEnvironment] != "" && e.EffectiveStage(r) != StageShadow {
			gl := groupLabels(r, s.Labels)
			envGroups[GroupKey(gl)] = gl
		}
	}
	for g, gs := range e.state.Groups {
		if gs.Labels[LabelEnvironment] != "" {
			if _, ok := envGroups[g]; !ok && gs.Escalated {
				envGroups[g] = gs.Labels
			} else if !ok {
				delete(e.state.Groups, g)
			}
		}
	}
	for g := range envGroups {
		groups[g] = true
	}
	weights := map[string][]float64{}
	minutes := map[string][]float64{}
	for _, s := range e.state.Series {
		r, ok := rules[s.Rule]
		if !ok || !s.Firing || e.EffectiveStage(r) == StageShadow {
			continue
		}
		g := GroupKey(groupLabels(r, s.Labels))
		weights[g] = append(weights[g], r.Weight)
		minutes[g] = append(minutes[g], now.Sub(s.Since).Minutes())
	}
	var out []GroupScore
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		sc := Score(weights[g], minutes[g])
		gs := e.state.group(g)
		gs.Labels = envGroups[g]
		gs.History = append(gs.History, ScorePoint{Time: now, Score: sc})
		if len(gs.History) > scoreHistoryLen {
			gs.History = slices.Clone(gs.History[len(gs.History)-scoreHistoryLen:])
		}
		if sc < e.cfg.EscalateBelow {
			gs.Below++
			if gs.Below >= e.cfg.EscalateAfter && !gs.Escalated {
				gs.Escalated = true
				events = append(events, Event{Kind: EventEscalate, Time: now, Group: g, Labels: gs.Labels, Score: sc,
					History: slices.Clone(gs.History), Breaching: e.breaching(rules, g, now, results)})
			}
		} else {
			gs.Below = 0
			if gs.Escalated {
				gs.Escalated = false
				events = append(events, Event{Kind: EventRecover, Time: now, Group: g, Labels: gs.Labels, Score: sc,
					History: slices.Clone(gs.History)})
			}
		}
		out = append(out, GroupScore{Group: g, Score: sc, Below: gs.Below, Escalated: gs.Escalated})
	}
	return out, events
}

// breaching lists the firing live series of group g, with their latest
// values and baselines.
func (e *Engine) breaching(rules map[string]Rule, g string, now time.Time, results []Result) []Result {
	var out []Result
	for _, res := range results {
		if res.Group == g && res.Firing && res.Stage != StageShadow {
			out = append(out, res)
		}
	}
	// Firing series not evaluated in this cycle still count.
	seen := map[string]bool{}
	for _, res := range out {
		seen[seriesKey(res.Rule, res.Labels)] = true
	}
	for k, s := range e.state.Series {
		r, ok := rules[s.Rule]
		if !ok || seen[k] || !s.Firing || GroupKey(groupLabels(r, s.Labels)) != g || e.EffectiveStage(r) == StageShadow {
			continue
		}
		out = append(out, Result{Rule: r.Name, Type: r.Type, Stage: e.EffectiveStage(r), Group: g,
			Labels: s.Labels, Value: s.Value, Threshold: r.Threshold, Breach: true, Firing: true, Since: s.Since})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rule < out[j].Rule })
	return out
}

func (e *Engine) timeout(r Rule) time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

// ForgetEnvironment ends the series of an environment that left the
// inventory (disappeared: no build used it for a while; or evicted): a
// firing one is resolved with a message saying so, never as healthy,
// and its state is dropped. An escalated group of it recovers at the
// next evaluation. why is the inventory's reason; the events go to the
// engine's sink as well.
func (e *Engine) ForgetEnvironment(id, why string) []Event {
	c := e.set.Load()
	e.cycle.Lock()
	defer e.cycle.Unlock()
	e.mu.Lock()
	now := e.cfg.Now()
	rules := map[string]Rule{}
	if c != nil {
		for _, r := range c.set.Rules {
			rules[r.Name] = r
		}
	}
	var events []Event
	for _, k := range slices.Sorted(maps.Keys(e.state.Series)) {
		st := e.state.Series[k]
		if st.Labels[LabelEnvironment] != id {
			continue
		}
		delete(e.state.Series, k)
		r, ok := rules[st.Rule]
		if !ok || !st.Firing {
			continue
		}
		stage := e.EffectiveStage(r)
		if stage == StageShadow {
			continue
		}
		events = append(events, Event{Kind: EventResolve, Time: now, Rule: r.Name, Stage: stage,
			Group: GroupKey(groupLabels(r, st.Labels)), Labels: st.Labels, Notify: r.Notify, Value: st.Value,
			Threshold: r.Threshold, Since: st.Since,
			Message: fmt.Sprintf("environment %s left the inventory (%s): no longer patrolled; resolved without a healthy result", id, why)})
	}
	err := e.state.Save(e.cfg.StateDir)
	e.mu.Unlock()
	if err != nil {
		e.cfg.Logger.Warn("patrol state not saved", "err", err)
	}
	if e.cfg.Events != nil {
		for _, ev := range events {
			e.cfg.Events(ev)
		}
	}
	return events
}
