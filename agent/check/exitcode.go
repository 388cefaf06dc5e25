package check

// ExitIncomplete is the exit code of a run the doctor could not finish: a
// check ended in status error (it could not run, timed out or panicked) or
// the run was interrupted. Such a run is not a success even when nothing
// failed: what was not checked is unknown. A failure found says more and
// keeps ExitFail.
const ExitIncomplete = 4

// FinalExitCode is the exit code of a whole run (docs/checks.md, "Exit
// codes"): ExitFail when a check failed (or warned, with failOnWarn), else
// ExitIncomplete when a check is in error or the run was interrupted, else
// ExitOK. The CLI and the agent's one-shot mode both end with it.
func (rep Report) FinalExitCode(failOnWarn, interrupted bool) int {
	if code := rep.ExitCode(failOnWarn); code != ExitOK {
		return code
	}
	if interrupted || rep.Summary[Error] > 0 {
		return ExitIncomplete
	}
	return ExitOK
}
