package patrolmetrics

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/gopatrol/gopatrol/agent/patrol"
	"github.com/gopatrol/gopatrol/metricdef"
)

// Recorder is a patrol.Recorder over the catalogue's instruments.
type Recorder struct{ in *metricdef.Instruments }

// New returns a recorder on in.
func New(in *metricdef.Instruments) *Recorder { return &Recorder{in: in} }

var _ patrol.Recorder = (*Recorder)(nil)

// RecordResult records one evaluation of a rule and label set.
func (r *Recorder) RecordResult(ctx context.Context, res patrol.Result) {
	name := metric.WithAttributes(metricdef.AttrRuleName.String(res.Rule))
	r.in.RuleEvaluationDuration.Record(ctx, res.Duration.Seconds(), name)
	if res.Error != "" {
		r.in.RuleEvaluationErrors.Add(ctx, 1, name)
		return
	}
	series := metric.WithAttributeSet(attribute.NewSet(
		metricdef.AttrRuleName.String(res.Rule),
		metricdef.AttrRuleStage.String(string(res.Stage)),
		metricdef.AttrRuleLabels.String(patrol.GroupKey(res.Labels)),
	))
	r.in.RuleValue.Record(ctx, res.Value, series)
	var state int64
	switch {
	case res.Firing:
		state = 2
	case res.Breach:
		state = 1
	}
	r.in.RuleState.Record(ctx, state, series)
	if b := res.Baseline; b != nil {
		r.in.RuleBaselineMean.Record(ctx, b.Mean, series)
		r.in.RuleBaselineLower.Record(ctx, b.Lo, series)
		r.in.RuleBaselineUpper.Record(ctx, b.Hi, series)
	}
}

// RecordScore records a group's health score.
func (r *Recorder) RecordScore(ctx context.Context, g patrol.GroupScore) {
	r.in.GroupScore.Record(ctx, g.Score, metric.WithAttributes(metricdef.AttrGroup.String(g.Group)))
}

var _ patrol.ActionRecorder = (*Recorder)(nil)

// RecordAction counts one action of a firing rule and, after a remediate
// attempt, sets the rule's repair rate.
func (r *Recorder) RecordAction(ctx context.Context, a patrol.ActionResult) {
	r.in.RuleActions.Add(ctx, 1, metric.WithAttributes(metricdef.AttrRuleName.String(a.Rule),
		metricdef.AttrRuleAction.String(a.Action), metricdef.AttrRuleOutcome.String(a.Outcome)))
	if a.RepairRate != nil {
		r.in.RuleRepairRate.Record(ctx, *a.RepairRate, metric.WithAttributes(metricdef.AttrRuleName.String(a.Rule)))
	}
}
