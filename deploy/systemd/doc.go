// Package systemd holds gopatrol's systemd unit and its agent config for
// hosts without Kubernetes, and the test that holds them to the agent:
// systemd-analyze verify accepts the unit, the config passes agent.Load,
// the unit's capabilities are exactly what preflight says the config
// needs, and its state directory is the config's.
package systemd
