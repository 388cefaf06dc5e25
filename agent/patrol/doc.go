// Package patrol is gopatrol's rule engine (chapter 5 of the source
// document): patrol rules read from YAML, thresholds fixed or drifting with an
// EWMA baseline, breach episodes that tolerate flapping, a 0–100 health score
// per group of labels, the escalation decision, gray release of rules
// (shadow, canary, active) and an append-only audit log.
//
// It knows no daemon: the agent's scheduler calls Engine.Evaluate, and the
// engine reports what happened as Events through the sink it was given. It
// never sends a notification itself; agent/notify does that from the events.
// Rule types that need a driver this package does not carry (promql, sql)
// get a Source from a factory the caller registers (Config.Sources), so
// their package plugs in without this one importing it.
//
// State that must survive a restart (baselines, open episodes, the counts
// behind `gopatrol rules report`) is kept in one JSON file in the state
// directory, replaced atomically after each cycle.
package patrol
