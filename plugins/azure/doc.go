// Command gopatrol-probe-azure detects an Azure virtual machine through
// the Instance Metadata Service (IMDS): GET /metadata/instance with
// "Metadata: true" and an api-version.
package main
