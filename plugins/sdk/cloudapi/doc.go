// Package cloudapi is what the probes need around a vendor SDK to call a
// cloud's metrics API from inside the probe process: an HTTP client whose
// answers are bounded (BoundedTransport), temporary credentials cached
// until shortly before they expire, a rate gate (Sampler) so that a
// priced API is called at most once per interval, and retries with
// backoff for an SDK whose own retryer has none.
//
// The requests themselves, their signing and the parsing of the answers
// are the official SDKs' (the AWS SDK for Go v2 for CloudWatch, Alibaba
// Cloud's SDK for Go for CloudMonitor); nothing here signs.
//
// Credentials live only in this process: Credentials redacts itself in
// every format and log value, and nothing here logs a request's headers
// or URL.
package cloudapi
