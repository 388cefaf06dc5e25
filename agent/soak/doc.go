// Package soak is issue 19's proof that the agent survives its hard month:
// a real `gopatrol agent` binary, with real sensors, a real probe plugin,
// a real OTLP receiver and a real webhook target, is put through the
// faults node agents meet in the field, on purpose, while its memory and
// CPU are sampled:
//
//   - its collector goes away and comes back (a loopback TCP relay that
//     drops every connection and refuses new ones);
//   - its probe plugin is SIGKILLed again and again;
//   - it gets SIGHUP with a broken config or a broken rule set;
//   - its notification target goes away and comes back;
//   - it builds and fails opens at a rate no real node sees;
//   - its state directory's file system fills up (a small tmpfs);
//   - it is SIGKILLed and started again on the same state;
//   - its scheduler's loop is stalled through Options.BeforeSchedulerTick.
//
// The package holds tests only. `go test` (and so `make test`) runs each
// fault for seconds; `make soak` (GOPATROL_SOAK=full) runs the issue's
// durations (a 5-minute collector and target outage, a plugin kill every
// 30 s, a SIGHUP every minute, 1,000 builds and a million failing opens)
// in about 15 minutes, 11 of them the all-faults run, and with SOAK_OUT
// set writes the run's samples (CSV), figures (JSON) and their plot (PNG)
// there: docs/soak holds the committed ones.
package soak
