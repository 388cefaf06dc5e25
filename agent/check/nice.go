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

// starters are the OS threads that start niced commands, one per
// niceness (nice → chan startReq).
var starters sync.Map

type startReq struct {
	cmd *exec.Cmd
	err chan error
}

// startNiced starts cmd from an OS thread whose niceness is nice: the
// child inherits it at fork, before it runs anything, and so do its
// threads and everything it starts (a go command's compilers and
// linkers). The kernel derives the best-effort I/O priority from it too.
// Setting it on the child after the start would miss what the child
// started meanwhile.
//
// The thread is one goroutine's, locked to it for the life of the
// process: it runs nothing else, so no other goroutine is ever reniced,
// and it never exits, because a child's parent-death signal (SIGKILL,
// Target.Command) follows the thread that forked it, not the process. A
// thread that ended after each start would kill what it started, and
// whatever else the runtime had forked from that thread before.
func startNiced(cmd *exec.Cmd, nice int) error {
	req := startReq{cmd: cmd, err: make(chan error, 1)}
	starter(nice) <- req
	return <-req.err
}

func starter(nice int) chan<- startReq {
	if c, ok := starters.Load(nice); ok {
		return c.(chan startReq)
	}
	c := make(chan startReq)
	if prev, loaded := starters.LoadOrStore(nice, c); loaded {
		return prev.(chan startReq)
	}
	go func() {
		runtime.LockOSThread() // never unlocked: see startNiced
		// PRIO_PROCESS with who 0 is the calling thread on Linux.
		err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, nice)
		if err != nil {
			err = fmt.Errorf("niceness %d: %w", nice, err)
		}
		for req := range c {
			if err != nil {
				req.err <- fmt.Errorf("%s: %w", req.cmd.Path, err)
				continue
			}
			req.err <- req.cmd.Start()
		}
	}()
	return c
}
