// Package query holds the patrol rule sources that ask another system for
// one number: `promql` (an instant query against a Prometheus HTTP API)
// and `sql` (one value from a query against MySQL/MariaDB or
// PostgreSQL). Each constructor returns a value whose
// Query(ctx) (float64, error) the patrol engine calls on every evaluation;
// the engine defines that one-method interface, so this package does not
// import it. A Registry builds them from the agent's configuration of
// named servers (Servers), a rule's target naming one.
//
// Errors are named (ErrNoData, ErrManyValues, ErrNotNumber, ...) so that
// the engine can tell "nothing to compare" from "the source is down".
// Database credentials come from a file or an environment variable
// holding the DSN; a DSN and its password never appear in an error or a
// log line: every error from the driver passes through a redaction of
// both.
package query
