// Package gcp is the probe served as gopatrol-probe-gcp (one name of the
// multi-call binary cmd/gopatrol-probes). It detects a Google Compute
// Engine instance (and a GKE node) through the metadata server, which
// answers only requests carrying "Metadata-Flavor: Google" and signs its
// answers with the same header.
package gcp
