package patrol

import "context"

// Recorder receives the figures of every evaluation, for the daemon to
// export as instruments (per rule value, breach, baseline band, duration
// and errors; per group score). patrolmetrics implements it over OTel.
type Recorder interface {
	RecordResult(ctx context.Context, r Result)
	RecordScore(ctx context.Context, g GroupScore)
}
