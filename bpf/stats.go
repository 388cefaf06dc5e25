package bpf

import (
	"fmt"
	"sort"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
)

// Stats are the sensor's self-metrics: what it delivered, what it lost,
// what the kernel counted, and what its programs cost.
type Stats struct {
	// Events is the number of records decoded and delivered.
	Events uint64
	// DecodeErrors counts malformed records; UnknownEvents records of a
	// type no decoder is registered for. Both are skipped.
	DecodeErrors  uint64
	UnknownEvents uint64
	// Drops counts records lost in the kernel because the ring buffer was
	// full, by event type. Only types with drops appear.
	Drops map[EventType]uint64
	// FileFailures are the kernel's exact counters of failed file accesses
	// by tree processes, one entry per non-zero (class, errno) pair.
	FileFailures []FailureCount
	// Programs are the kernel's BPF stats of every program, the
	// extensions' included: zero unless Config.RunTime (or another
	// process) turned the kernel's statistics on. RunTimeEnabled says
	// whether the sensor did.
	Programs       []ProgramStats
	RunTimeEnabled bool
	// ScopeAttached says whether the tree-scoped programs are attached;
	// ScopeAttaches counts how often a tree's start attached them, and
	// MaxScopeLatency is the longest time from a root's exec to that
	// attachment: what a tree's start may miss of connects and sends.
	ScopeAttached   bool
	ScopeAttaches   uint64
	MaxScopeLatency time.Duration
}

// FailureCount is one counter of failed file accesses.
type FailureCount struct {
	Class Class
	Errno syscall.Errno
	Count uint64
}

// ProgramStats is the kernel's accounting of one BPF program.
type ProgramStats struct {
	Name     string
	RunCount uint64
	RunTime  time.Duration
}

// TotalDrops is the sum of Drops.
func (st Stats) TotalDrops() uint64 {
	var n uint64
	for _, d := range st.Drops {
		n += d
	}
	return n
}

// Failures returns the counter of (class, errno), 0 when none.
func (st Stats) Failures(c Class, e syscall.Errno) uint64 {
	for _, f := range st.FileFailures {
		if f.Class == c && f.Errno == e {
			return f.Count
		}
	}
	return 0
}

// Stats reads the counters from the kernel.
func (s *Sensor) Stats() (Stats, error) {
	st := Stats{
		Events:         s.nEvents.Load(),
		DecodeErrors:   s.nDecodeErrors.Load(),
		UnknownEvents:  s.nUnknown.Load(),
		Drops:          map[EventType]uint64{},
		RunTimeEnabled: s.statsFD != nil,
	}
	s.scopeMu.Lock()
	st.ScopeAttached = len(s.scopeLinks) > 0
	st.ScopeAttaches, st.MaxScopeLatency = s.nScopeAttaches, s.maxScopeLatency
	s.scopeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return st, fmt.Errorf("eBPF sensors: Stats after Close")
	}
	var perCPU []uint64
	for t := uint32(0); t < uint32(maxEventType); t++ {
		if err := s.objs.GpDrops.Lookup(t, &perCPU); err != nil {
			return st, fmt.Errorf("eBPF sensors: read drop counters: %w", err)
		}
		if n := sum(perCPU); n > 0 {
			st.Drops[EventType(t)] = n
		}
	}
	for c := uint32(0); c < numClasses; c++ {
		for slot, errno := range countedErrnos {
			idx := c*uint32(len(countedErrnos)) + uint32(slot)
			if err := s.objs.GpFailures.Lookup(idx, &perCPU); err != nil {
				return st, fmt.Errorf("eBPF sensors: read failure counters: %w", err)
			}
			if n := sum(perCPU); n > 0 {
				st.FileFailures = append(st.FileFailures, FailureCount{Class(c), errno, n})
			}
		}
	}
	progs := map[string]*ebpf.Program{
		"gp_exec": s.objs.GpExec, "gp_fork": s.objs.GpFork,
		"gp_exit": s.objs.GpExit, "gp_sock_state": s.objs.GpSockState,
		"gp_go_syscall_error": s.objs.GpGoSyscallError,
	}
	if s.syscalls {
		progs["gp_sys_exit"] = s.objs.GpSysExit
	}
	for _, e := range s.exts {
		for name, p := range e.Programs() {
			progs[name] = p
		}
	}
	for name, p := range progs {
		ps, err := p.Stats()
		if err != nil {
			return st, fmt.Errorf("eBPF sensors: stats of program %s: %w", name, err)
		}
		st.Programs = append(st.Programs, ProgramStats{Name: name, RunCount: ps.RunCount, RunTime: ps.Runtime})
	}
	sort.Slice(st.Programs, func(i, j int) bool { return st.Programs[i].Name < st.Programs[j].Name })
	return st, nil
}

func sum(v []uint64) uint64 {
	var n uint64
	for _, x := range v {
		n += x
	}
	return n
}
