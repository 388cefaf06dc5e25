package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/notify"
	"github.com/gopatrol/gopatrol/agent/patrol"
	"github.com/gopatrol/gopatrol/agent/patrol/patrolmetrics"
	"github.com/gopatrol/gopatrol/agent/patrol/query"
	"github.com/gopatrol/gopatrol/metricdef"
)

// escalationRule is the rule name of escalation tickets in notify and in
// the audit log: a ticket is about a group, not one rule.
const escalationRule = "escalation"

// DoctorGroup is the group of the doctor's check rules in the shipped rule
// set (deploy/rules/doctor.yaml): its score is gopatrol.health.score.
const DoctorGroup = "service=go-toolchain"

// ruleEngine is the running rule engine: the engine, where its events go, and
// the loop that evaluates it on the agent's clock.
type ruleEngine struct {
	eng      *patrol.Engine
	notifier *notify.Notifier
	reg      *query.Registry
	tracer   trace.Tracer

	wg sync.WaitGroup // the loop, the notifier and running escalations

	mu sync.Mutex
	// open are the escalation tickets by group: the key and start of
	// each, so that recovery comments on the same ticket; kept in the
	// state directory (tickets.go).
	open map[string]notify.Event
}

// startRules loads the rules (loadRules) and starts the evaluation loop
// and the notification delivery. No rules.dir: nothing.
func (a *agent) startRules(ctx context.Context) error {
	if err := a.loadRules(ctx); err != nil || a.rules == nil {
		return err
	}
	r := a.rules
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.notifier.Run(ctx) }()
	go func() { defer r.wg.Done(); a.rulesLoop(ctx, r) }()
	return nil
}

// loadRules builds the engine from the config and loads the rule set (a
// bad set is a *ConfigError: the start fails with exit 2) into a.rules;
// nothing runs yet. No rules.dir: a.rules stays nil. ctx is the one the
// engine's events act in (escalations, silences).
func (a *agent) loadRules(ctx context.Context) error {
	cfg := a.plan.cfg
	if cfg.Rules.Dir == "" {
		return nil
	}
	bad := func(key string, err error) error { return &ConfigError{File: cfg.File, Key: key, Msg: err.Error()} }
	reg, err := query.NewRegistry(cfg.Sources)
	if err != nil {
		return splitKey(cfg.File, "sources", err)
	}
	n, err := notify.New(cfg.Notify, filepath.Join(cfg.StateDir, "outbox"), a.log.With("component", "notify"))
	if err != nil {
		reg.Close()
		return splitKey(cfg.File, "notify", err)
	}
	open, err := loadTickets(cfg.StateDir)
	if err != nil {
		reg.Close()
		return bad("state_dir", err)
	}
	r := &ruleEngine{notifier: n, reg: reg, open: open}
	// A cycle's span goes through the caller's provider, else through the
	// one OTEL_TRACES_EXPORTER built for build traces (started before the
	// rules), so that tickets carry a trace ID that exists in the backend.
	if tp := a.opts.TracerProvider; tp != nil {
		r.tracer = tp.Tracer("github.com/gopatrol/gopatrol/agent", trace.WithInstrumentationVersion(a.opts.Version))
	} else if a.traces != nil {
		r.tracer = a.traces.tp.Tracer()
	}
	env := &check.Env{Target: a.plan.target, Toolchain: a.plan.toolchain}
	r.eng, err = patrol.New(patrol.Config{
		StateDir:      cfg.StateDir,
		HostID:        a.hostID(),
		ResolveAfter:  cfg.Rules.ResolveAfter,
		EscalateBelow: cfg.Rules.EscalateBelow,
		EscalateAfter: cfg.Rules.EscalateAfter,
		AllowExec:     cfg.Rules.AllowExec,
		Sources:       sourceFactories(reg),
		// A check rule runs what it names on its own schedule: the
		// shipped set puts the slow build checks in an `at: 02:00` rule.
		Checks: patrol.Doctor{Env: env, Checks: a.plan.sets[SetFull],
			Runner: a.runner(&cfg)},
		Environments: a.envSource(),
		Metrics:      readerMetrics{a.selfRead},
		Remediation:  remediation(cfg.Remediation, env, defaultFix),
		Events:       func(ev patrol.Event) { a.onRuleEvent(ctx, r, ev) },
		TraceID:      traceID,
		Instruments:  patrolmetrics.New(a.rec.Instruments()),
		Logger:       a.log.With("component", "patrol"),
		Now:          a.clock.Now,
	})
	if err != nil {
		reg.Close()
		return bad("state_dir", err)
	}
	if err := r.eng.Load(cfg.Rules.Dir); err != nil {
		reg.Close()
		return bad("rules.dir", fmt.Errorf("%s: %w", cfg.Rules.Dir, err))
	}
	if audit := r.eng.Audit(); audit != nil {
		n.OnDelivery(func(d notify.Delivery) { a.audited(audit, d) })
	}
	if a.envs != nil {
		a.envs.rules.Store(r.eng)
	}
	set := r.eng.Rules()
	a.log.Info("rules loaded", "dir", cfg.Rules.Dir, "rules", len(set.Rules), "digest", set.Digest, "revision", set.Revision)
	a.rules = r
	return nil
}

// stopRules waits for the loop, the escalations and the delivery workers
// (their context has ended) and closes the database pools.
func (a *agent) stopRules() {
	if a.rules == nil {
		return
	}
	a.rules.wg.Wait()
	a.rules.reg.Close()
}

// reloadRules re-reads rules.dir on SIGHUP. A set that does not load
// keeps the one in force; the engine has written the refusal to the
// audit log.
func (a *agent) reloadRules(cfg *Config) {
	if a.rules == nil {
		return
	}
	result := "rules_ok"
	if err := a.rules.eng.Load(cfg.Rules.Dir); err != nil {
		result = "rules_failed"
		a.log.Error("rule reload refused; the rules in force stay", "dir", cfg.Rules.Dir, "err", err)
	} else {
		set := a.rules.eng.Rules()
		a.log.Info("rules reloaded", "dir", cfg.Rules.Dir, "rules", len(set.Rules), "digest", set.Digest, "revision", set.Revision)
	}
	a.mu.Lock()
	a.reloads[result]++
	a.mu.Unlock()
	a.self.reloads.Add(context.Background(), 1, metric.WithAttributes(metricdef.AttrReloadResult.String(result)))
}

// rulesLoop evaluates the due rules every rules.tick of the agent's clock
// until ctx ends.
func (a *agent) rulesLoop(ctx context.Context, r *ruleEngine) {
	for {
		a.rulesCycle(ctx, r)
		select {
		case <-ctx.Done():
			return
		case <-a.clock.After(a.cfg.Load().Rules.Tick):
		}
	}
}

// rulesCycle is one evaluation, in its own span when there is a tracer,
// so that events and tickets can name the cycle's trace.
func (a *agent) rulesCycle(ctx context.Context, r *ruleEngine) {
	if r.tracer != nil {
		var span trace.Span
		ctx, span = r.tracer.Start(ctx, "patrol cycle")
		defer span.End()
	}
	cyc, err := r.eng.Evaluate(ctx)
	if err != nil {
		a.log.Error("rule evaluation failed", "err", err)
		return
	}
	for _, g := range cyc.Scores {
		if g.Group == DoctorGroup {
			a.rec.Score(ctx, g.Score)
		}
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.Int("gopatrol.patrol.results", len(cyc.Results)),
			attribute.Int("gopatrol.patrol.events", len(cyc.Events)))
	}
}

func traceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}

// onRuleEvent acts on one decision of the engine: notify a firing or
// resolved episode; escalate (diagnosis, ticket) or close the ticket.
func (a *agent) onRuleEvent(ctx context.Context, r *ruleEngine, ev patrol.Event) {
	switch ev.Kind {
	case patrol.EventFire, patrol.EventResolve:
		a.notifyEpisode(ctx, r, ev)
	case patrol.EventEscalate:
		// The full doctor takes minutes: not on the cycle's time. It is
		// cancelled by the stop, so the shutdown stays bounded.
		r.wg.Add(1)
		go func() { defer r.wg.Done(); a.escalate(ctx, r, ev) }()
	case patrol.EventRecover:
		a.recoverTicket(r, ev)
	}
}

func (a *agent) notifyEpisode(ctx context.Context, r *ruleEngine, ev patrol.Event) {
	if ev.Stage == patrol.StageShadow || len(ev.Notify) == 0 {
		return // the engine sends none for shadow; said again here
	}
	ne := notify.Event{Kind: notify.Firing, Rule: ev.Rule, Group: ev.Group, Stage: string(ev.Stage),
		Node: a.nodeName(), Labels: ev.Labels, Cloud: a.cloudAttrs(), Value: ev.Value, Summary: episodeSummary(ev),
		TraceID: ev.TraceID, StartsAt: ev.Since, Notify: ev.Notify, Annotations: ev.Annotations}
	if id := ev.Labels[patrol.LabelEnvironment]; id != "" {
		ne.Details = envDetails(id, ev.Annotations)
	}
	if ev.Kind == patrol.EventResolve {
		ne.Kind, ne.EndsAt = notify.Resolved, ev.Time
	}
	if _, err := r.notifier.Notify(ne); err != nil {
		a.log.Error("notification not queued", "rule", ev.Rule, "kind", string(ne.Kind), "err", err)
	}
	cfg := a.cfg.Load()
	if ev.Kind == patrol.EventFire && ev.Stage == patrol.StageCanary && cfg.Rules.SilenceCanary {
		a.silenceCanary(ctx, r, ev)
	}
}

func episodeSummary(ev patrol.Event) string {
	s := fmt.Sprintf("value %g, threshold %s", ev.Value, ev.Threshold)
	if b := ev.Baseline; b != nil {
		s += fmt.Sprintf(", baseline %.4g [%.4g, %.4g]", b.Mean, b.Lo, b.Hi)
	}
	if ev.Message != "" {
		s += ": " + ev.Message
	}
	return s
}

// silenceCanary silences a canary rule's alert for a day, so that it is
// recorded in Alertmanager without paging; the ID goes to the log and
// the audit.
func (a *agent) silenceCanary(ctx context.Context, r *ruleEngine, ev patrol.Event) {
	now := a.clock.Now()
	id, err := r.notifier.Silence(ctx, notify.Silence{
		Matchers: map[string]string{"rule": ev.Rule, "stage": string(patrol.StageCanary)},
		StartsAt: now, EndsAt: now.Add(24 * time.Hour), CreatedBy: "gopatrol",
		Comment: "canary rule " + ev.Rule + " on " + a.nodeName()})
	if err != nil {
		a.log.Error("canary silence not created", "rule", ev.Rule, "err", err)
		return
	}
	a.log.Info("canary alert silenced", "rule", ev.Rule, "silence_id", id)
	if audit := r.eng.Audit(); audit != nil {
		if err := audit.Record(patrol.AuditSilence, ev.Rule, "alertmanager", id, "canary"); err != nil {
			a.log.Error("audit line not written", "err", err)
		}
	}
}

// escalate runs the full doctor as the diagnosis and opens a ticket at
// each of rules.tickets, once per episode (the engine decides once).
func (a *agent) escalate(ctx context.Context, r *ruleEngine, ev patrol.Event) {
	cfg := a.cfg.Load()
	a.log.Warn("group escalated: running the full doctor", "group", ev.Group, "score", ev.Score)
	envID := ev.Labels[patrol.LabelEnvironment]
	var rep check.Report
	var where string
	if envID != "" {
		// The group is one environment's: the diagnosis is there.
		rep, where = a.envDiagnosis(ctx, envID, cfg)
	} else {
		env := &check.Env{Target: a.plan.target, Toolchain: a.plan.toolchain}
		rep = check.NewReport(a.plan.toolchain, check.Runner{Timeout: cfg.Checks.Timeout}.Run(ctx, env, a.checks(SetFull, cfg)))
	}
	ne := notify.Event{Kind: notify.Firing, Rule: escalationRule, Group: ev.Group, Node: a.nodeName(),
		Value: ev.Score, TraceID: ev.TraceID, StartsAt: ev.Time, Notify: cfg.Rules.Tickets, Labels: ev.Labels,
		Summary: fmt.Sprintf("health score %.0f of group %s stayed under %g", ev.Score, groupName(ev.Group), cfg.Rules.EscalateBelow),
		Details: where + ticketDetails(ev, rep) + a.envChanges(envID)}
	if ctx.Err() != nil {
		// The engine will not escalate this episode again: the ticket
		// still goes to the outbox, saying why the diagnosis is short.
		ne.Details += "\nThe diagnosis was cut short: the agent was stopping.\n"
	}
	ne.Key = notify.EpisodeKey(escalationRule, ev.Group, nil, ev.Time)
	a.setTicket(r, ev.Group, &ne)
	if len(ne.Notify) == 0 {
		a.log.Warn("escalation without a ticket target (rules.tickets)", "group", ev.Group)
		return
	}
	if _, err := r.notifier.Notify(ne); err != nil {
		a.log.Error("ticket not queued", "group", ev.Group, "err", err)
	}
}

// recoverTicket adds the resolving comment to the group's ticket.
func (a *agent) recoverTicket(r *ruleEngine, ev patrol.Event) {
	r.mu.Lock()
	ne, ok := r.open[ev.Group]
	r.mu.Unlock()
	if ok {
		a.setTicket(r, ev.Group, nil)
	}
	if !ok {
		a.log.Warn("group recovered, but no open ticket is known for it (state_dir lost?): comment on it by hand", "group", ev.Group)
		return
	}
	if len(ne.Notify) == 0 {
		return
	}
	ne.Kind, ne.EndsAt, ne.Value = notify.Resolved, ev.Time, ev.Score
	ne.Summary = fmt.Sprintf("health score of group %s recovered to %.0f", groupName(ev.Group), ev.Score)
	ne.Details = "Score history:\n" + scoreHistory(ev.History)
	if _, err := r.notifier.Notify(ne); err != nil {
		a.log.Error("ticket comment not queued", "group", ev.Group, "err", err)
	}
}

func groupName(g string) string {
	if g == "" {
		return "(no labels)"
	}
	return g
}

// ticketDetails is the ticket's body: score history, the breaching rules
// with values and baselines, the diagnosis, the cycle's trace.
func ticketDetails(ev patrol.Event, rep check.Report) string {
	var b strings.Builder
	b.WriteString("Score history:\n" + scoreHistory(ev.History))
	b.WriteString("\nBreaching rules:\n")
	for _, res := range ev.Breaching {
		fmt.Fprintf(&b, "- %s %s: value %g, threshold %s", res.Rule, patrol.GroupKey(res.Labels), res.Value, res.Threshold)
		if bl := res.Baseline; bl != nil {
			fmt.Fprintf(&b, ", baseline mean %.4g band [%.4g, %.4g] over %d samples", bl.Mean, bl.Lo, bl.Hi, bl.N)
		}
		if !res.Since.IsZero() {
			fmt.Fprintf(&b, ", since %s", res.Since.UTC().Format(time.RFC3339))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nDiagnosis (full doctor): %d pass, %d warn, %d fail, %d error, %d skip\n",
		rep.Summary[check.Pass], rep.Summary[check.Warn], rep.Summary[check.Fail], rep.Summary[check.Error], rep.Summary[check.Skip])
	for _, res := range rep.Results {
		if res.Status == check.Fail || res.Status == check.Error || res.Status == check.Warn {
			fmt.Fprintf(&b, "- %s %s: %s\n", res.Status, res.ID, res.Summary)
		}
	}
	if ev.TraceID != "" {
		fmt.Fprintf(&b, "\nTrace of the patrol cycle: %s\n", ev.TraceID)
	}
	return b.String()
}

func scoreHistory(h []patrol.ScorePoint) string {
	var b strings.Builder
	for _, p := range h {
		fmt.Fprintf(&b, "- %s %.1f\n", p.Time.UTC().Format(time.RFC3339), p.Score)
	}
	return b.String()
}

// audited writes one delivered (or refused) message to the audit log.
func (a *agent) audited(audit *patrol.Audit, d notify.Delivery) {
	kind := patrol.AuditNotification
	if d.Message.Rule == escalationRule {
		kind = patrol.AuditTicket
	}
	detail := string(d.Message.Kind)
	if d.Err != nil {
		detail += ": refused: " + d.Err.Error()
	}
	if err := audit.Record(kind, d.Message.Rule, d.Message.Target, d.Ref, detail); err != nil {
		a.log.Error("audit line not written", "err", err)
	}
}

// cloudAttrs are the cloud.* attributes the probe plugins detected, for
// the labels of alerts.
func (a *agent) cloudAttrs() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.detection == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range a.detection.Attributes {
		if strings.HasPrefix(k, "cloud.") && v != "" {
			out[k] = v
		}
	}
	return out
}

// nodeName is the node label of alerts: the host name.
func (a *agent) nodeName() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

// rulesStatus is the engine's state for /status.
func (a *agent) rulesStatus() *patrol.Status {
	if a.rules == nil {
		return nil
	}
	st := a.rules.eng.Status()
	return &st
}

// sourceFactories registers the promql and sql rule types on reg.
func sourceFactories(reg *query.Registry) map[string]patrol.SourceFactory {
	return map[string]patrol.SourceFactory{
		patrol.TypePromQL: func(r patrol.Rule) (patrol.Source, error) {
			src, err := reg.PromQL(r.Target, r.Query, r.Timeout)
			if err != nil {
				return nil, err
			}
			return src, nil
		},
		patrol.TypeSQL: func(r patrol.Rule) (patrol.Source, error) {
			src, err := reg.SQL(r.Target, r.Query, r.Timeout)
			if err != nil {
				return nil, err
			}
			return src, nil
		},
	}
}
