package check

import (
	"strings"
	"time"
)

// SetGoEnvTimeout shortens the deadline of `go env` for a test and
// returns the function that restores it.
func SetGoEnvTimeout(d time.Duration) (restore func()) {
	old := goEnvTimeout
	goEnvTimeout = d
	return func() { goEnvTimeout = old }
}

// ProofInputsText is what ProofInputs hashes, a line each, for a test to
// show what changed.
func ProofInputsText(env *Env) string {
	var b strings.Builder
	writeProofInputs(&b, nil, env, nil)
	return strings.ReplaceAll(b.String(), "\x00", " ")
}
