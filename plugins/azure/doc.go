// Package azure is the probe served as gopatrol-probe-azure (one name of
// the multi-call binary cmd/gopatrol-probes). It detects an Azure virtual
// machine through the Instance Metadata Service (IMDS): GET
// /metadata/instance with "Metadata: true" and an api-version.
package azure
