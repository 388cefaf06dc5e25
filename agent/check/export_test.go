package check

import "time"

// SetGoEnvTimeout shortens the deadline of `go env` for a test and
// returns the function that restores it.
func SetGoEnvTimeout(d time.Duration) (restore func()) {
	old := goEnvTimeout
	goEnvTimeout = d
	return func() { goEnvTimeout = old }
}
