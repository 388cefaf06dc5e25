// Package aws is the probe served as gopatrol-probe-aws (one name of the
// multi-call binary cmd/gopatrol-probes). It detects an EC2 instance
// through IMDSv2: a session token (PUT /latest/api/token), then the
// instance identity document, which carries the region (never derived
// from the zone name).
package aws
