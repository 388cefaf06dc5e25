package sdk

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// dieWithParent arms PR_SET_PDEATHSIG so that the kernel kills the plugin
// when its host goes away, then closes the race where the host died before
// the prctl: the parent is no longer the host. The signal fires when the
// host thread that forked us ends, not only the process; Go rarely ends
// threads, and if it does the supervisor restarts the plugin.
func dieWithParent(host int) {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "gopatrol probe: prctl(PR_SET_PDEATHSIG): %v\n", err)
	}
	if os.Getppid() != host {
		fmt.Fprintf(os.Stderr, "gopatrol probe: host %d is gone, exiting\n", host)
		os.Exit(1)
	}
	// Belt and braces for re-parenting the signal misses (e.g. the host
	// ran us through a wrapper that exited).
	go func() {
		for range time.Tick(2 * time.Second) {
			if os.Getppid() != host {
				os.Exit(1)
			}
		}
	}()
}
