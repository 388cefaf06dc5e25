package patrol

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// Actions a rule can take when it fires, besides notifying.
const (
	// ActionRemediate applies the fix of the doctor check the rule names
	// in `remediate:` and reruns the check (a Remedier does both).
	ActionRemediate = "remediate"
	// ActionWebhook POSTs the firing as JSON to the rule's `webhook:` URL,
	// for an automation outside the node (an Argo Events webhook event
	// source starting a workflow, a scaler).
	ActionWebhook = "webhook"
)

// Outcomes of an action, as audited and counted.
const (
	OutcomeHeld        = "held"         // the fix was applied and the check passes again
	OutcomeNotHeld     = "not_held"     // the fix was applied and the check still fails
	OutcomeRefused     = "refused"      // the fix runner would not touch it (not automatable, outside what the check owns)
	OutcomeError       = "error"        // the fix runner or the webhook failed
	OutcomeDelivered   = "delivered"    // the webhook answered 2xx
	OutcomeSkipped     = "skipped"      // shadow or canary stage, or the node did not opt in
	OutcomeRateLimited = "rate_limited" // the node's hourly allowance was spent
)

// DefaultMaxPerHour is the node's remediation allowance when the config
// sets none: enough for a few broken things at once, too few to thrash.
const DefaultMaxPerHour = 6

// DefaultActionTimeout bounds one fix-and-rerun or one webhook POST.
const DefaultActionTimeout = 2 * time.Minute

// Remedier applies the fix of one doctor check and reruns the check. The
// agent implements it over the fix runner of `gopatrol check --fix`.
type Remedier interface {
	Remediate(ctx context.Context, r Rule, fix string) (Attempt, error)
}

// Attempt is what one remediation did: the check before and after, what
// changed and how to undo it, and whether the repair held (the rerun
// passed). Refused says why nothing was changed, when nothing was.
type Attempt struct {
	Check         string
	Before, After check.Result
	Changes, Undo []string
	Held          bool
	Refused       string
}

// RemediationConfig is the node's side of remediation: rules ask for it,
// the node must also allow it.
type RemediationConfig struct {
	// Enabled is the node's opt-in; without it firing rules' actions are
	// audited as skipped and nothing runs.
	Enabled bool
	// MaxPerHour bounds the actions run on this node in any hour
	// (DefaultMaxPerHour when zero).
	MaxPerHour int
	// Timeout bounds one action (DefaultActionTimeout when zero).
	Timeout time.Duration
	// Remedier runs remediate actions; nil refuses them.
	Remedier Remedier
}

// ActionResult is one action decided on a firing: run, skipped or limited.
type ActionResult struct {
	Time    time.Time         `json:"time"`
	Rule    string            `json:"rule"`
	Action  string            `json:"action"`
	Target  string            `json:"target"` // the check ID, or the webhook URL without query or credentials
	Stage   Stage             `json:"stage"`
	Labels  map[string]string `json:"labels,omitempty"`
	Outcome string            `json:"outcome"`
	Reason  string            `json:"reason,omitempty"`
	Attempt *Attempt          `json:"attempt,omitempty"`
	// RepairRate is the rule's held repairs over remediate attempts so far,
	// set after a remediate action ran.
	RepairRate *float64 `json:"repair_rate,omitempty"`
}

// ActionRecorder receives every action (patrolmetrics implements it next
// to Recorder); the engine uses it when Config.Instruments has it.
type ActionRecorder interface {
	RecordAction(ctx context.Context, a ActionResult)
}

// RepairCount is a rule's remediate attempts and the repairs that held,
// kept across restarts so the rate is the rule's, not the process's.
type RepairCount struct {
	Attempts int `json:"attempts"`
	Held     int `json:"held"`
}

// pendingAction is a firing whose rule has actions, noted by apply.
type pendingAction struct {
	rule   Rule
	stage  Stage
	labels map[string]string
	event  Event
}

// WebhookPayload is the JSON body of a webhook action (docs/rules.md,
// "Webhook actions"): what fired, where, and since when.
type WebhookPayload struct {
	Source    string            `json:"source"` // always "gopatrol"
	Kind      string            `json:"kind"`   // always "fire"
	Rule      string            `json:"rule"`
	Stage     Stage             `json:"stage"`
	Group     string            `json:"group"`
	Labels    map[string]string `json:"labels,omitempty"`
	Value     float64           `json:"value"`
	Threshold string            `json:"threshold"`
	Message   string            `json:"message,omitempty"`
	Since     time.Time         `json:"since"`
	Time      time.Time         `json:"time"`
	Host      string            `json:"host,omitempty"`
	TraceID   string            `json:"trace_id,omitempty"`
}

// validWebhook accepts an absolute http or https URL without credentials:
// the URL is audited, and a secret in it would land in the audit log.
func validWebhook(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an absolute http or https URL, such as http://webhook-eventsource-svc.argo-events:12000/gopatrol", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q: a webhook URL carries no credentials (they would be audited); use an endpoint reachable from the node without them", check.RedactURLs(s))
	}
	return nil
}

// webhookTarget is the URL as audited: scheme, host and path only.
func webhookTarget(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// noteAction remembers a firing whose rule has actions. e.mu is held.
// Shadow firings are noted too, so the audit shows what would have run.
func (e *Engine) noteAction(r Rule, st *SeriesState, stage Stage, ev Event) {
	if (r.Remediate == "" && r.Webhook == "") || st.Acted {
		return
	}
	st.Acted = true // once per episode, whatever the outcome
	e.pending = append(e.pending, pendingAction{rule: r, stage: stage, labels: ev.Labels, event: ev})
}

// act runs the actions noted in this cycle. It is called without e.mu.
func (e *Engine) act(ctx context.Context, traceID string) []ActionResult {
	e.mu.Lock()
	pending := e.pending
	e.pending = nil
	e.mu.Unlock()
	var out []ActionResult
	for _, p := range pending {
		for _, kind := range []string{ActionRemediate, ActionWebhook} {
			target := p.rule.Remediate
			if kind == ActionWebhook {
				target = p.rule.Webhook
			}
			if target == "" {
				continue
			}
			res := e.runAction(ctx, p, kind, target, traceID)
			out = append(out, res)
			e.auditAction(res)
			if rec, ok := e.cfg.Instruments.(ActionRecorder); ok {
				rec.RecordAction(ctx, res)
			}
		}
	}
	return out
}

// gate returns the outcome (skipped or rate_limited) and reason of an
// action that must not run now, or "" when it may; an action that may
// run is counted against the node's hourly allowance here.
func (e *Engine) gate(p pendingAction, now time.Time) (outcome, reason string) {
	rc := e.cfg.Remediation
	switch {
	case p.stage == StageShadow:
		return OutcomeSkipped, "rule is in shadow stage on this node"
	case p.stage == StageCanary:
		return OutcomeSkipped, "rule is in canary stage: actions run only once it is active"
	case !rc.Enabled:
		return OutcomeSkipped, "remediation is not enabled on this node (agent config remediation.enabled)"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	hour := now.Add(-time.Hour)
	kept := e.state.Actions[:0]
	for _, t := range e.state.Actions {
		if t.After(hour) {
			kept = append(kept, t)
		}
	}
	e.state.Actions = kept
	limit := rc.MaxPerHour
	if limit <= 0 {
		limit = DefaultMaxPerHour
	}
	if len(kept) >= limit {
		return OutcomeRateLimited, fmt.Sprintf("%d actions in the last hour, the node's limit (remediation.max_per_hour)", len(kept))
	}
	e.state.Actions = append(e.state.Actions, now)
	return "", ""
}

func (e *Engine) runAction(ctx context.Context, p pendingAction, kind, target, traceID string) ActionResult {
	now := e.cfg.Now()
	res := ActionResult{Time: now, Rule: p.rule.Name, Action: kind, Target: target, Stage: p.stage, Labels: p.labels}
	if kind == ActionWebhook {
		res.Target = webhookTarget(target)
	}
	if env := p.labels[LabelEnvironment]; env != "" && kind == ActionRemediate {
		// A fix runs in the agent's own environment; the environment
		// that fired is another user's, container's or toolchain's.
		res.Outcome, res.Reason = OutcomeSkipped, "the firing is environment "+env+"'s: fixes run only in the agent's own environment (gopatrol check --env "+env+" shows what to do)"
		return res
	}
	if res.Outcome, res.Reason = e.gate(p, now); res.Outcome != "" {
		return res
	}
	timeout := e.cfg.Remediation.Timeout
	if timeout <= 0 {
		timeout = DefaultActionTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if kind == ActionWebhook {
		res.Outcome, res.Reason = e.postWebhook(ctx, p, target, traceID)
		return res
	}
	rem := e.cfg.Remediation.Remedier
	if rem == nil {
		res.Outcome, res.Reason = OutcomeRefused, "this agent has no fix runner"
		return res
	}
	at, err := rem.Remediate(ctx, p.rule, target)
	switch {
	case err != nil:
		res.Outcome, res.Reason = OutcomeError, err.Error()
	case at.Refused != "":
		res.Outcome, res.Reason = OutcomeRefused, at.Refused
	case at.Held:
		res.Outcome = OutcomeHeld
	default:
		res.Outcome, res.Reason = OutcomeNotHeld, "the check still does not pass after the fix: "+at.After.Summary
	}
	if err == nil {
		res.Attempt = &at
	}
	e.mu.Lock()
	rc := &e.state.ruleStats(p.rule.Name).Repairs
	rc.Attempts++
	if res.Outcome == OutcomeHeld {
		rc.Held++
	}
	rate := float64(rc.Held) / float64(rc.Attempts)
	e.mu.Unlock()
	res.RepairRate = &rate
	e.cfg.Logger.Info("remediation", "rule", res.Rule, "check", target, "outcome", res.Outcome, "reason", res.Reason)
	return res
}

// postWebhook sends the firing as JSON. A 2xx answer is delivered;
// anything else is an error naming the status and the start of the body.
func (e *Engine) postWebhook(ctx context.Context, p pendingAction, target, traceID string) (outcome, reason string) {
	ev := p.event
	body, err := json.Marshal(WebhookPayload{Source: "gopatrol", Kind: string(EventFire), Rule: p.rule.Name, Stage: p.stage,
		Group: ev.Group, Labels: maps.Clone(ev.Labels), Value: ev.Value, Threshold: ev.Threshold, Message: ev.Message,
		Since: ev.Since, Time: ev.Time, Host: e.cfg.HostID, TraceID: traceID})
	if err != nil {
		return OutcomeError, fmt.Sprintf("webhook payload: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return OutcomeError, fmt.Sprintf("webhook %s: %v", webhookTarget(target), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gopatrol")
	resp, err := e.cfg.HTTPClient.Do(req)
	if err != nil {
		return OutcomeError, fmt.Sprintf("webhook %s: %v", webhookTarget(target), redactErr(err))
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return OutcomeError, fmt.Sprintf("webhook %s answered %s: %s", webhookTarget(target), resp.Status, bytes.TrimSpace(head))
	}
	return OutcomeDelivered, resp.Status
}

// redactErr keeps a url.Error's query string (which may carry a token)
// out of the audit.
func redactErr(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Sprintf("%s %s: %v", ue.Op, webhookTarget(ue.URL), ue.Err)
	}
	return err.Error()
}

func (e *Engine) auditAction(a ActionResult) {
	if e.audit == nil {
		return
	}
	ent := AuditEntry{Time: a.Time.UTC(), Kind: AuditRemediation, Rule: a.Rule, Action: a.Action, Target: a.Target,
		NewStage: a.Stage, Labels: a.Labels, Outcome: a.Outcome, Detail: a.Reason}
	if at := a.Attempt; at != nil {
		ent.Before = &AuditCheck{Status: string(at.Before.Status), Summary: at.Before.Summary}
		ent.After = &AuditCheck{Status: string(at.After.Status), Summary: at.After.Summary}
		ent.Changes, ent.Undo = at.Changes, at.Undo
	}
	if err := e.audit.Append(ent); err != nil {
		e.cfg.Logger.Error("audit log not written", "err", err)
	}
}
