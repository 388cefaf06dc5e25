package bpf

import (
	"testing"
	"unsafe"

	"github.com/gopatrol/gopatrol/bpf/internal/btflayout"
)

// objectStruct is the layout of a struct in the BTF of the committed
// sensor object (the one loadSensor embeds).
var objectStruct = btflayout.Cache(loadSensor,
	"gp_exec_event", "gp_exit_event", "gp_env_event", "gp_file_event", "gp_connect_event", "gp_path_key")

type fields = map[string]btflayout.Field

// header is how Decode reads struct gp_event_header, under prefix.
func header(prefix string) fields {
	return fields{
		prefix + "type": {Offset: hdrType, Size: 2}, prefix + "size": {Offset: hdrSize, Size: 2},
		prefix + "pid": {Offset: hdrPID, Size: 4}, prefix + "tid": {Offset: hdrTID, Size: 4},
		prefix + "root_pid": {Offset: hdrRootPID, Size: 4}, prefix + "ktime_ns": {Offset: hdrTime, Size: 8},
	}
}

// peer is how DecodePeer reads struct gp_peer at off, under prefix.
func peer(prefix string, off int) fields {
	return fields{
		prefix + "family": {Offset: off + peerFamily, Size: 2}, prefix + "port": {Offset: off + peerPort, Size: 2},
		prefix + "addr": {Offset: off + peerAddr, Size: 16},
	}
}

func merge(sets ...fields) fields {
	out := fields{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

// TestLayoutsMatchObject is the decoder's alignment check: every member
// of every record the sensor writes, and the class map's key, must be
// read by the Go side at the offset and with the size the committed
// object has (its BTF, from the C). A C member added, moved or resized
// without the Go side fails here; so does a Go offset typed wrong.
func TestLayoutsMatchObject(t *testing.T) {
	var pk pathKey
	tests := []struct {
		name string
		size int
		want fields
	}{
		{"gp_exec_event", execEventSize, merge(header("hdr."), fields{
			"ppid": {Offset: execPPID, Size: 4}, "uid": {Offset: execUID, Size: 4},
			"cgroup_id": {Offset: execCgroupID, Size: 8}, "start_ns": {Offset: execStart, Size: 8},
			"filename_len": {Offset: execNameLen, Size: 2}, "args_len": {Offset: execArgsLen, Size: 2},
			"args_truncated": {Offset: execArgsTruncated, Size: 2}, "comm": {Offset: execComm, Size: commLen},
			"filename": {Offset: execFilename, Size: pathMax}, "args": {Offset: execArgs, Size: argsMax},
		})},
		{"gp_exit_event", exitEventSize, merge(header("hdr."), fields{
			"ppid": {Offset: exitPPID, Size: 4}, "uid": {Offset: exitUID, Size: 4},
			"exit_code": {Offset: exitCode, Size: 4}, "cgroup_id": {Offset: exitCgroupID, Size: 8},
			"start_ns": {Offset: exitStart, Size: 8}, "duration_ns": {Offset: exitDuration, Size: 8},
			"comm": {Offset: exitComm, Size: commLen},
		})},
		{"gp_env_event", envEventSize, merge(header("hdr."), fields{
			"ppid": {Offset: envPPID, Size: 4}, "uid": {Offset: envUID, Size: 4},
			"mnt_ns": {Offset: envMountNS, Size: 8}, "cgroup_id": {Offset: envCgroupID, Size: 8},
			"env_len": {Offset: envLen, Size: 2}, "env_truncated": {Offset: envTruncated, Size: 2},
			"cwd_len": {Offset: envCwdLen, Size: 2}, "exe_len": {Offset: envExeLen, Size: 2},
			"cwd_complete": {Offset: envCwdComplete, Size: 2}, "exe_complete": {Offset: envExeComplete, Size: 2},
			"cwd": {Offset: envCwd, Size: walkMax}, "exe": {Offset: envExe, Size: walkMax},
			"env": {Offset: envEnviron, Size: envMax},
		})},
		{"gp_file_event", fileEventSize, merge(header("hdr."), fields{
			"syscall_nr": {Offset: fileSyscall, Size: 4}, "err": {Offset: fileErr, Size: 4},
			"class_id": {Offset: fileClass, Size: 2}, "path_len": {Offset: filePathLen, Size: 2},
			"path": {Offset: filePath, Size: pathMax},
		})},
		{"gp_connect_event", connectEventSize, merge(header("hdr."), peer("peer.", connectPeer), fields{
			"ret": {Offset: connectRet, Size: 4}, "duration_ns": {Offset: connectDuration, Size: 8},
		})},
		// The Go struct cilium/ebpf marshals as the LPM trie's key.
		{"gp_path_key", int(unsafe.Sizeof(pk)), fields{
			"prefixlen": {Offset: int(unsafe.Offsetof(pk.PrefixLen)), Size: int(unsafe.Sizeof(pk.PrefixLen))},
			"data":      {Offset: int(unsafe.Offsetof(pk.Data)), Size: int(unsafe.Sizeof(pk.Data))},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, err := range objectStruct(t, tt.name).Check(tt.size, 0, tt.want) {
				t.Error(err)
			}
		})
	}
	if HeaderSize != hdrTime+8 || PeerSize != peerAddr+16 {
		t.Errorf("HeaderSize %d, PeerSize %d do not end at their last member", HeaderSize, PeerSize)
	}
}

// TestLayoutCheckFails: the check is not vacuous; a Go offset off by
// one, a member not decoded, and a wrong size are each reported.
func TestLayoutCheckFails(t *testing.T) {
	s := objectStruct(t, "gp_connect_event")
	good := merge(header("hdr."), peer("peer.", connectPeer), fields{
		"ret": {Offset: connectRet, Size: 4}, "duration_ns": {Offset: connectDuration, Size: 8},
	})
	if errs := s.Check(connectEventSize, 0, good); len(errs) != 0 {
		t.Fatalf("the right layout fails: %v", errs)
	}
	moved, missing := merge(good), merge(good)
	moved["ret"] = btflayout.Field{Offset: connectRet + 1, Size: 4}
	delete(missing, "duration_ns")
	for name, tc := range map[string]struct {
		size int
		f    fields
	}{"moved": {connectEventSize, moved}, "missing": {connectEventSize, missing}, "size": {connectEventSize + 8, good}} {
		if errs := s.Check(tc.size, 0, tc.f); len(errs) != 1 {
			t.Errorf("%s: %d errors %v, want 1", name, len(errs), errs)
		}
	}
}
