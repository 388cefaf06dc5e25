// Package aws is the probe served as gopatrol-probe-aws (one name of the
// multi-call binary cmd/gopatrol-probes). It detects an EC2 instance
// through IMDSv2: a session token (PUT /latest/api/token), then the
// instance identity document, which carries the region (never derived
// from the zone name).
//
// It collects the ENA driver's allowance counters (read on the node with
// the SIOCETHTOOL ioctl: no credentials, no cost) and, only when
// GOPATROL_AWS_CLOUDWATCH_INTERVAL is set (CloudWatch bills each metric
// requested), CloudWatch's EC2 metrics for the instance through the
// official AWS SDK for Go v2 (aws-sdk-go-v2 v1.48.0, config v1.33.18,
// service/cloudwatch v1.75.7): the SDK's paginator, SigV4 signing,
// protocol (Smithy RPC v2 CBOR), standard retryer (4 attempts) and
// endpoint resolution (AWS_ENDPOINT_URL_CLOUDWATCH). What stays ours:
// the choice of credentials (the SDK's environment sources, else the
// instance role through IMDSv2 asked with the metadata client, never a
// proxy; no ~/.aws file), the bounded transport under the SDK, the rate
// gate, one retry with fresh credentials after ExpiredToken, and the
// conversion of the results into points (non-finite values refused).
package aws
