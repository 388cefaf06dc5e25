package check

import (
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// niced holds the niceness of the commands Target.Command made for a
// target with Nice set, until Run or CombinedOutput starts them.
var niced sync.Map // *exec.Cmd → int

// startNiced starts cmd from an OS thread of its own whose niceness is
// nice: the child inherits it at fork, before it runs anything, and so
// do its threads and everything it starts (a go command's compilers and
// linkers). The kernel derives the best-effort I/O priority from it too.
// Setting it on the child after the start would miss what the child
// started meanwhile.
//
// The thread stays locked until release, to be called once cmd has been
// waited for: the child's parent-death signal (SIGKILL, Target.Command)
// follows the thread that forked it, not the process. Never unlocked, the
// thread then ends with its goroutine instead of going back to the
// scheduler reniced.
func startNiced(cmd *exec.Cmd, nice int) (release func(), err error) {
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		// PRIO_PROCESS with who 0 is the calling thread on Linux.
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, nice); err != nil {
			errc <- fmt.Errorf("niceness %d for %s: %w", nice, cmd.Path, err)
			return
		}
		err := cmd.Start()
		errc <- err
		if err == nil {
			<-done
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return func() { close(done) }, nil
}
