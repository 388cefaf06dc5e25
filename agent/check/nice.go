package check

import (
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// priority is what commands of a target with Nice or Idle start with.
type priority struct {
	nice int
	idle bool // SCHED_IDLE
}

// niced holds the priority of the commands Target.Command made for a
// target with Nice or Idle set, until Run or CombinedOutput starts them.
var niced sync.Map // *exec.Cmd → priority

// starters are the OS threads that start niced commands, one per
// priority (priority → chan startReq).
var starters sync.Map

type startReq struct {
	cmd *exec.Cmd
	err chan error
}

// startNiced starts cmd from an OS thread of priority p: the child
// inherits its niceness and scheduling policy at fork, before it runs
// anything, and so do its threads and everything it starts (a go
// command's compilers and linkers). The kernel derives the I/O priority
// from them too (the idle class under SCHED_IDLE). Setting them on the
// child after the start would miss what the child started meanwhile.
//
// The thread is one goroutine's, locked to it for the life of the
// process: it runs nothing else, so no other goroutine is ever reniced,
// and it never exits, because a child's parent-death signal (SIGKILL,
// Target.Command) follows the thread that forked it, not the process. A
// thread that ended after each start would kill what it started, and
// whatever else the runtime had forked from that thread before.
func startNiced(cmd *exec.Cmd, p priority) error {
	req := startReq{cmd: cmd, err: make(chan error, 1)}
	starter(p) <- req
	return <-req.err
}

func starter(p priority) chan<- startReq {
	if c, ok := starters.Load(p); ok {
		return c.(chan startReq)
	}
	c := make(chan startReq)
	if prev, loaded := starters.LoadOrStore(p, c); loaded {
		return prev.(chan startReq)
	}
	go func() {
		runtime.LockOSThread() // never unlocked: see startNiced
		err := p.set()
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

// set gives the calling thread priority p.
func (p priority) set() error {
	// PRIO_PROCESS with who 0 is the calling thread on Linux.
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, p.nice); err != nil {
		return fmt.Errorf("niceness %d: %w", p.nice, err)
	}
	if p.idle {
		// pid 0 is the calling thread. SCHED_IDLE keeps the niceness
		// set above (it only sets it for SCHED_OTHER and SCHED_BATCH).
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			return fmt.Errorf("SCHED_IDLE: %w", err)
		}
	}
	return nil
}
