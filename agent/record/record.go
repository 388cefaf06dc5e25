package record

import (
	"context"
	"fmt"
	"sync/atomic"

	"go.opentelemetry.io/otel/metric"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/metricdef"
)

// Recorder records reports and probe states through the catalogue's
// instruments.
type Recorder struct {
	in *metricdef.Instruments
	// scoreByRules is set when the agent's rule engine owns the doctor's
	// group: gopatrol.health.score is then that group's score, recorded
	// through Score, and Report leaves it alone.
	scoreByRules atomic.Bool
}

// New creates the catalogue's instruments on m.
func New(m metric.Meter) (*Recorder, error) {
	in, err := metricdef.NewInstruments(m)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	return &Recorder{in: in}, nil
}

// Instruments are the recorder's instruments, for the recordings that
// have no mapping here yet (sensor aggregates).
func (r *Recorder) Instruments() *metricdef.Instruments { return r.in }

// Report records one run of the doctor (docs/metrics.md, "The doctor's
// metrics"): for every check one gopatrol.check.result point per status,
// 1 for the check's status and 0 for the others, so that a check moving
// from pass to fail sets pass back to 0; one duration sample per check
// that ran (a kept proof did not);
// the health score unless every check skipped.
func (r *Recorder) Report(ctx context.Context, rep check.Report) {
	for _, res := range rep.Results {
		id := metricdef.AttrCheckID.String(res.ID)
		for _, s := range check.Statuses {
			v := int64(0)
			if s == res.Status {
				v = 1
			}
			r.in.CheckResult.Record(ctx, v, metric.WithAttributes(id, metricdef.AttrCheckStatus.String(string(s))))
		}
		// A kept proof did not run: its lookup is no sample of the
		// check's time.
		if res.ProvedAt.IsZero() {
			r.in.CheckDuration.Record(ctx, res.Duration.Seconds(),
				metric.WithAttributes(id, metricdef.AttrCheckStatus.String(string(res.Status))))
		}
	}
	if r.scoreByRules.Load() {
		return
	}
	if score, ok := HealthScore(rep.Summary); ok {
		r.in.HealthScore.Record(ctx, score)
	}
}

// Score records gopatrol.health.score from the rule engine's score of the
// doctor's group (0–100, 100 − Σ wᵢ·log2(dᵢ+1)); from then on Report no
// longer records the one-run score.
func (r *Recorder) Score(ctx context.Context, score float64) {
	r.scoreByRules.Store(true)
	r.in.HealthScore.Record(ctx, score)
}

// HealthScore is the score of one run of the doctor on the 0–100 scale of
// the rule engine's groups: 100 × (passes + half the warnings) over the
// checks that did not skip; undefined (false) when all skipped. One run has
// no episode durations, so this is the fallback for `check --export` and
// agents without the doctor's rules (docs/metrics.md).
func HealthScore(summary map[check.Status]int) (float64, bool) {
	counted := summary[check.Pass] + summary[check.Warn] + summary[check.Fail] + summary[check.Error]
	if counted == 0 {
		return 0, false
	}
	return 100 * (float64(summary[check.Pass]) + 0.5*float64(summary[check.Warn])) / float64(counted), true
}
