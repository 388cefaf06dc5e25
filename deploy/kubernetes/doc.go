// Package kubernetes holds gopatrol's Kubernetes manifests (a kustomize
// base and the eks, ack and openshift overlays) and the test that builds
// each overlay with the kustomize API and holds the result to the agent:
// strict decoding into the Kubernetes API types, the security posture,
// probes and ports against the agent config in the ConfigMap, the Downward
// API variables against the ones the agent reads, and the capabilities
// against the ones preflight says the config needs.
//
// It is a module of its own so that kustomize and the Kubernetes API types,
// which only this test needs, stay out of gopatrol's module graph. `make
// test` runs it.
package kubernetes
