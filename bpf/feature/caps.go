package feature

// EffectiveCaps returns this process's effective capability set as a bit
// mask (bit n is capability n of linux/capability.h), read from
// /proc/self/status. The preflight names each capability with it.
func EffectiveCaps() (uint64, error) { return effectiveCaps() }
