// Package openshift is the probe served as gopatrol-probe-openshift (one
// name of the multi-call binary cmd/gopatrol-probes). It reads the
// cluster's platform from OpenShift's
// infrastructures.config.openshift.io/cluster and, on any Kubernetes
// node, the node's topology labels, through the in-cluster API with the
// pod's service-account token and CA.
package openshift
