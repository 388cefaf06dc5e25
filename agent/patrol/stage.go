package patrol

import "hash/fnv"

// InCanary reports whether the node hostID is in the canary share of rule:
// a stable hash of both, so the same nodes stay in while the percentage
// holds, each rule picks a different share, and raising the percentage
// only adds nodes.
func InCanary(hostID, rule string, percent float64) bool {
	h := fnv.New64a()
	h.Write([]byte(hostID))
	h.Write([]byte{0})
	h.Write([]byte(rule))
	// 10,000 slots give the percentage two decimals.
	return float64(h.Sum64()%10000) < percent*100
}
