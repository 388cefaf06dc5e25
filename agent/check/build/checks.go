package build

import "github.com/gopatrol/gopatrol/agent/check"

// Checks returns this package's checks.
func Checks() []check.Check {
	return []check.Check{
		racePprofCheck(raceTestSource),
		cacheVerifyCheck(),
		pieCheck("pie"),
	}
}
