// Package cloudapi is what the probes need to call a cloud's metrics API
// from inside the probe process: request signing (AWS Signature Version 4,
// Alibaba Cloud's RPC signature v1), temporary credentials cached until
// shortly before they expire, a rate gate so that a priced API is called
// at most once per interval, bounded answers and retries with backoff on
// throttling.
//
// Signing is implemented here from the vendors' published algorithms
// rather than through the vendors' SDKs: the AWS SDK for Go v2 with its
// CloudWatch client and Alibaba's tea/openapi stack would add a dozen
// modules to every probe for two read-only calls. The tests check both
// algorithms against the examples in the vendors' documentation.
//
// Credentials live only in this process: Credentials redacts itself in
// every format and log value, and nothing here logs a request's headers.
package cloudapi
