// Package logging is the one constructor of gopatrol's loggers: every
// command of the CLI and the daemon build their *slog.Logger here, so the
// format (text for a terminal, JSON for a log collector), the level and
// the handler options are decided in one place.
//
// Logs go to stderr by convention: stdout carries reports that scripts
// parse. Nothing here reads the environment; the daemon's config and the
// CLI's flags decide, and Parse reports a bad value by name.
package logging
