// Package metadata is the HTTP client cloud probes use to talk to a
// metadata service: no proxy (link-local addresses must never go through
// HTTP_PROXY), one short dial that tells "not this cloud" from "broken",
// and capped response bodies.
//
// TokenSource is the session-token cache of services in token mode (EC2's
// IMDSv2, Alibaba ECS's hardened mode), shared by the probes that need it.
// Endpoint reads an endpoint override from the environment, so tests and
// mirrors can point a probe elsewhere.
package metadata
