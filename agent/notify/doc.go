// Package notify delivers what the patrol engine decides to say: alerts to
// Alertmanager, messages to Slack channels and signed webhooks, and tickets
// in Jira. It knows no daemon and no rule engine: callers hand it an Event
// (one per breach episode, one when the episode resolves) and run its
// delivery loop.
//
// Every message goes through an on-disk outbox first: one file per pending
// message per target, written atomically and fsync'd, so that a target
// that is down loses nothing, neither while it is down nor across a
// restart of the process. Each target has its own worker: a target that
// hangs, answers 500 or answers garbage is retried with exponential
// backoff and jitter, each call under its own deadline, and never holds up
// the messages for the other targets. Delivery is deduplicated by a
// message ID derived from the target, the episode key and the kind, so an
// episode notifies once when it fires and once when it resolves.
//
// Credentials (webhook URLs that embed a token, HMAC keys, Jira tokens)
// come from files or environment variables through agent/internal/secret,
// are read when a message is sent, and never appear in the outbox, in logs
// or in errors. docs/notify.md describes targets, configuration and the
// outbox.
package notify
