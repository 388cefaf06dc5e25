package bpf

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// DefaultLinger is how long the tree-scoped programs stay attached after
// the last tree ends: a CI job running go commands back to back keeps them.
const DefaultLinger = 5 * time.Second

// Tree-scoped programs are attached only while a Go tree is alive (or
// always with Config.Eager). They are the hooks every process on the
// machine runs through, where even a program that returns at once costs a
// connect or a send measurably (the kernel's dispatch alone is ~1.6 % of a
// loopback connect: docs/benchmarks.md): gp_sock_state and the TLS probes'
// socket program. The exec, fork and exit programs stay attached, since
// they are what notices a tree starting, and cost one lookup per process
// event. A tree's first ~millisecond runs before the scoped programs are
// attached (Stats.ScopeLatency): a connect or ClientHello in it is missed.

// AttachWhileTrees hands prog (a tp_btf program) to the sensor, which
// attaches it while a Go tree is alive. DetachWhileTrees takes it back.
func (s *Sensor) AttachWhileTrees(prog *ebpf.Program) error {
	s.scopeMu.Lock()
	defer s.scopeMu.Unlock()
	if s.scopeClosed {
		return errors.New("eBPF sensors: AttachWhileTrees after Close")
	}
	s.scoped = append(s.scoped, prog)
	if s.scopeOn && !s.scopePaused {
		return s.attachScoped()
	}
	return nil
}

// DetachWhileTrees detaches prog if attached and forgets it.
func (s *Sensor) DetachWhileTrees(prog *ebpf.Program) error {
	s.scopeMu.Lock()
	defer s.scopeMu.Unlock()
	for i, p := range s.scoped {
		if p == prog {
			s.scoped = append(s.scoped[:i], s.scoped[i+1:]...)
			break
		}
	}
	if l, ok := s.scopeLinks[prog]; ok {
		delete(s.scopeLinks, prog)
		if err := l.Close(); err != nil {
			return fmt.Errorf("eBPF sensors: detach %s: %w", prog, err)
		}
	}
	return nil
}

// attachScoped attaches every scoped program not attached yet. Callers
// hold scopeMu.
func (s *Sensor) attachScoped() error {
	var errs []error
	for _, p := range s.scoped {
		if _, ok := s.scopeLinks[p]; ok {
			continue
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			errs = append(errs, fmt.Errorf("eBPF sensors: attach %s: %w", p, err))
			continue
		}
		s.scopeLinks[p] = l
	}
	return errors.Join(errs...)
}

// detachScoped closes the scoped links. Callers hold scopeMu.
func (s *Sensor) detachScoped() error {
	var errs []error
	for p, l := range s.scopeLinks {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("eBPF sensors: detach %s: %w", p, err))
		}
		delete(s.scopeLinks, p)
	}
	return errors.Join(errs...)
}

// treeStarted records the exec of a tree root at ktime (CLOCK_MONOTONIC)
// and attaches the scoped programs if they are not.
func (s *Sensor) treeStarted(root uint32, ktime time.Duration) {
	s.scopeMu.Lock()
	defer s.scopeMu.Unlock()
	if s.scopeClosed {
		return
	}
	s.roots[root] = struct{}{}
	if s.lingerTimer != nil {
		s.lingerTimer.Stop()
		s.lingerTimer = nil
	}
	if s.scopeOn {
		return
	}
	s.scopeOn = true
	if s.scopePaused {
		return
	}
	if err := s.attachScoped(); err != nil {
		s.log.Warn("eBPF sensors: tree-scoped programs", "err", err)
	}
	s.nScopeAttaches++
	if d := monotonic() - ktime; d > s.maxScopeLatency {
		s.maxScopeLatency = d
	}
}

// treeEnded records the exit of a tree root; with no tree left the scoped
// programs go after the linger time.
func (s *Sensor) treeEnded(root uint32) {
	s.scopeMu.Lock()
	defer s.scopeMu.Unlock()
	delete(s.roots, root)
	s.armLinger()
}

// armLinger starts the linger timer when no tree is left. Callers hold
// scopeMu.
func (s *Sensor) armLinger() {
	if len(s.roots) > 0 || s.eager || !s.scopeOn || s.scopeClosed || s.lingerTimer != nil {
		return
	}
	s.lingerTimer = time.AfterFunc(s.linger, s.lingerExpired)
}

// lingerExpired detaches the scoped programs, unless a tree came meanwhile.
// A root whose exit event was lost (ring buffer full) would keep them
// attached forever: roots that no longer exist are dropped here.
func (s *Sensor) lingerExpired() {
	s.scopeMu.Lock()
	defer s.scopeMu.Unlock()
	s.lingerTimer = nil
	for root := range s.roots {
		if unix.Kill(int(root), 0) == syscall.ESRCH {
			delete(s.roots, root)
		}
	}
	if len(s.roots) > 0 {
		s.lingerTimer = time.AfterFunc(s.linger, s.lingerExpired)
		return
	}
	if !s.scopeOn || s.eager || s.scopeClosed {
		return
	}
	s.scopeOn = false
	if err := s.detachScoped(); err != nil {
		s.log.Warn("eBPF sensors: tree-scoped programs", "err", err)
	}
}

// pauseScoped and resumeScoped let the benchmarks switch the whole sensor
// off and on without losing the scope state.
func (s *Sensor) pauseScoped() error {
	s.scopeMu.Lock()
	defer s.scopeMu.Unlock()
	s.scopePaused = true
	return s.detachScoped()
}

func (s *Sensor) resumeScoped() error {
	s.scopeMu.Lock()
	defer s.scopeMu.Unlock()
	s.scopePaused = false
	if s.scopeOn {
		return s.attachScoped()
	}
	return nil
}

// closeScoped detaches for good.
func (s *Sensor) closeScoped() error {
	s.scopeMu.Lock()
	defer s.scopeMu.Unlock()
	s.scopeClosed = true
	if s.lingerTimer != nil {
		s.lingerTimer.Stop()
		s.lingerTimer = nil
	}
	return s.detachScoped()
}

// ScopeAttached says whether the tree-scoped programs are attached now.
func (s *Sensor) ScopeAttached() bool {
	s.scopeMu.Lock()
	defer s.scopeMu.Unlock()
	return len(s.scopeLinks) > 0
}

func monotonic() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}
