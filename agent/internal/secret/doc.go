// Package secret reads credentials (tokens, webhook URLs, DSNs, HMAC keys)
// from where an operator keeps them: a file (a Kubernetes Secret mounted as
// a volume) or an environment variable. A Source names where the value is,
// never the value, so that configs, logs and errors can show the Source
// freely; the value itself only ever goes to the wire.
package secret
