package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/inventory"
)

// envTarget is the target of `check --env ID`: the environment of the
// agent's inventory, entered through a process still in its container,
// and its go binary (unless --go names another).
func envTarget(id string, sd *stateDirFlags, goBin string) (*check.Target, string, error) {
	st, err := sd.inventory()
	if err != nil {
		return nil, "", err
	}
	e, err := st.Find(id)
	if err != nil {
		return nil, "", usageErr("--env: %v", err)
	}
	if os.Geteuid() != 0 {
		return nil, "", usageErr("--env %s: entering another user's environment needs root (run with sudo)", id)
	}
	t, _, err := inventory.Patroller{}.Enter(e)
	if errors.Is(err, inventory.ErrUnreachable) {
		// Never a healthy report for what could not be checked.
		return nil, "", &exitError{code: check.ExitIncomplete, err: fmt.Errorf("--env %s: %w", e.ID, err)}
	}
	if err != nil {
		return nil, "", err
	}
	if goBin == "" {
		goBin = e.Env.Go
	}
	return t, goBin, nil
}
