// Command gopatrol-probe-gcp detects a Google Compute Engine instance (and
// a GKE node) through the metadata server, which answers only requests
// carrying "Metadata-Flavor: Google" and signs its answers with the same
// header.
package main
