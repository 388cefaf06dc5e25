//go:build !386 && !amd64

package bpf

import (
	"errors"
	"runtime"

	"github.com/cilium/ebpf"
)

// The sensor's object is built for x86_64 only (see gen.go). On other
// architectures the package compiles, and Open says why it cannot load.

const (
	sensorMapGpDrops     = "gp_drops"
	sensorMapGpEvents    = "gp_events"
	sensorMapGpTree      = "gp_tree"
	sensorVarSampleLimit = "sample_limit"
)

func loadSensor() (*ebpf.CollectionSpec, error) {
	return nil, errors.New("eBPF sensors: no object for " + runtime.GOARCH)
}

type sensorObjects struct {
	GpExec, GpExit, GpFork, GpSysExit, GpSockState, GpGoSyscallError              *ebpf.Program
	GpClasses, GpConns, GpDrops, GpEvents, GpFailures, GpNames, GpSamples, GpTree *ebpf.Map
}

func (o *sensorObjects) Close() error { return nil }
