package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// EventType numbers the records in the ring buffer (enum gp_event_type in
// c/gopatrol.h). 1..15 are the sensor's, 16..31 belong to add-on probes
// (TLS) that register a Decoder.
type EventType uint16

const (
	TypeExec        EventType = 1
	TypeExit        EventType = 2
	TypeFileFailure EventType = 3
	TypeConnect     EventType = 4
	TypeEnv         EventType = 5

	// FirstExtensionType..LastExtensionType are reserved for RegisterDecoder.
	FirstExtensionType EventType = 16
	LastExtensionType  EventType = 31
	maxEventType       EventType = 32
)

// HeaderSize is the size of struct gp_event_header.
const HeaderSize = 24

// Header starts every event: which process, in which tree, when.
type Header struct {
	Type    EventType     `json:"-"`
	Size    uint16        `json:"-"`
	PID     uint32        `json:"pid"`
	TID     uint32        `json:"tid"`
	RootPID uint32        `json:"root_pid"`
	Time    time.Duration `json:"ktime_ns"` // CLOCK_MONOTONIC, as bpf_ktime_get_ns
}

// EventHeader makes every struct that embeds Header an Event.
func (h Header) EventHeader() Header { return h }

// Event is one decoded record: *ExecEvent, *ExitEvent, *FileFailureEvent,
// *ConnectEvent, or an extension's type.
type Event interface {
	EventHeader() Header
}

// Decoder decodes the body of an extension's record (the bytes after the
// header, len(body) == h.Size-HeaderSize). It must not panic on any input.
type Decoder func(h Header, body []byte) (Event, error)

type extension struct {
	name   string
	decode Decoder
}

var (
	decodersMu sync.RWMutex
	decoders   = map[EventType]extension{}
)

// RegisterDecoder installs the decoder of extension event type t, named
// name in output. It panics when t is outside 16..31 or already taken:
// that is a programming error, found at init.
func RegisterDecoder(t EventType, name string, d Decoder) {
	if t < FirstExtensionType || t > LastExtensionType {
		panic(fmt.Sprintf("bpf.RegisterDecoder: type %d outside %d..%d", t, FirstExtensionType, LastExtensionType))
	}
	decodersMu.Lock()
	defer decodersMu.Unlock()
	if _, dup := decoders[t]; dup {
		panic(fmt.Sprintf("bpf.RegisterDecoder: type %d registered twice", t))
	}
	decoders[t] = extension{name, d}
}

// String names the type as in `gopatrol trace -o json`.
func (t EventType) String() string {
	switch t {
	case TypeExec:
		return "exec"
	case TypeExit:
		return "exit"
	case TypeFileFailure:
		return "file_failure"
	case TypeConnect:
		return "connect"
	case TypeEnv:
		return "env"
	}
	decodersMu.RLock()
	defer decodersMu.RUnlock()
	if e, ok := decoders[t]; ok {
		return e.name
	}
	return fmt.Sprintf("type%d", uint16(t))
}

// ExecEvent is a successful execve by a process in a tree (or the exec of
// the go command that starts one).
type ExecEvent struct {
	Header
	PPID     uint32        `json:"ppid"`
	UID      uint32        `json:"uid"`
	CgroupID uint64        `json:"cgroup_id"`
	Start    time.Duration `json:"start_ns"` // process start, CLOCK_MONOTONIC
	Comm     string        `json:"comm"`
	Filename string        `json:"filename"` // as passed to execve, may be relative
	Args     []string      `json:"args"`
	// ArgsTruncated says argv was longer than the kernel streams (1 KiB).
	ArgsTruncated bool `json:"args_truncated,omitempty"`
}

// ExitEvent is the end of a process in a tree (its last thread).
type ExitEvent struct {
	Header
	PPID     uint32        `json:"ppid"`
	UID      uint32        `json:"uid"`
	CgroupID uint64        `json:"cgroup_id"`
	Start    time.Duration `json:"start_ns"`
	Duration time.Duration `json:"duration_ns"`
	Comm     string        `json:"comm"`
	// WaitStatus is the kernel's exit code: exit status << 8 | signal.
	WaitStatus int32 `json:"wait_status"`
}

// ExitCode is the process's exit status, or -1 when a signal killed it.
func (e *ExitEvent) ExitCode() int {
	if e.WaitStatus&0x7f != 0 {
		return -1
	}
	return int(e.WaitStatus>>8) & 0xff
}

// Signal is the signal that killed the process, or 0.
func (e *ExitEvent) Signal() syscall.Signal { return syscall.Signal(e.WaitStatus & 0x7f) }

// EnvEvent is the environment a go command (a process whose name is one
// of Config.GoNames, in a tree or starting one) was started with, sent
// right after its ExecEvent: what /proc/PID would have shown, for a
// process that may be gone before anyone reads /proc.
type EnvEvent struct {
	Header
	PPID     uint32 `json:"ppid"`
	UID      uint32 `json:"uid"`
	MountNS  uint64 `json:"mount_ns"`  // inode of its mount namespace
	CgroupID uint64 `json:"cgroup_id"` // inode of its cgroup v2 directory
	// Exe and Cwd are its executable (symbolic links resolved) and its
	// working directory, as paths in its own root; "" when the kernel's
	// path was deeper or longer than the sensor walks.
	Exe string `json:"exe"`
	Cwd string `json:"cwd"`
	// Environ is its environment, NUL-separated KEY=value as in
	// /proc/PID/environ. It holds secrets: it is never marshalled, and
	// whoever takes it clears it (ClearEnviron) once the variables it
	// needs are read.
	Environ []byte `json:"-"`
	// EnvironTruncated says the environment was longer than the sensor
	// streams (EnvironMax): a variable may be missing from Environ.
	EnvironTruncated bool `json:"environ_truncated,omitempty"`
}

// EnvironMax is how much of a go command's environment EnvEvent carries.
const EnvironMax = envMax

// ClearEnviron zeroes Environ and drops it.
func (e *EnvEvent) ClearEnviron() {
	clear(e.Environ)
	e.Environ = nil
}

// FileFailureEvent is a sampled file-access failure: the first few of each
// (class, errno) pair are streamed, all are counted (Stats.FileFailures).
type FileFailureEvent struct {
	Header
	// Syscall is "" for failures seen by the Go error-branch probe, which
	// knows the path and errno but not the syscall.
	Syscall string        `json:"syscall,omitempty"`
	Errno   syscall.Errno `json:"-"`
	Error   string        `json:"errno"` // ErrnoName(Errno)
	Class   Class         `json:"class"`
	Path    string        `json:"path"`
}

// ConnectEvent is the outcome of a TCP connect to an IPv4 or IPv6 address,
// blocking or not: reported when the socket leaves SYN_SENT. The header's
// pid and tid are the caller of connect(2).
type ConnectEvent struct {
	Header
	Addr netip.AddrPort `json:"addr"`
	// Errno is 0 when the connection was established, else the socket's
	// error (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ...); ECONNABORTED when
	// the caller closed it first.
	Errno syscall.Errno `json:"-"`
	Error string        `json:"errno,omitempty"` // ErrnoName(Errno)
	// Duration is from the SYN sent to the outcome.
	Duration time.Duration `json:"duration_ns"`
}

// Layouts of the C records (c/sensor.bpf.c, c/gopatrol.h): offsets from
// the start of the record. TestLayoutsMatchObject checks every one, and
// every size, against the BTF of the committed object.
const (
	pathMax = 256
	argsMax = 1024
	walkMax = 1024
	envMax  = 16384
	commLen = 16

	// struct gp_event_header
	hdrType, hdrSize, hdrPID, hdrTID, hdrRootPID, hdrTime = 0, 2, 4, 8, 12, 16

	// struct gp_exec_event
	execPPID, execUID, execCgroupID, execStart      = HeaderSize, HeaderSize + 4, HeaderSize + 8, HeaderSize + 16
	execNameLen, execArgsLen, execArgsTruncated     = HeaderSize + 24, HeaderSize + 26, HeaderSize + 28
	execComm, execFilename, execArgs, execEventSize = HeaderSize + 32, execComm + commLen, execFilename + pathMax, execArgs + argsMax

	// struct gp_env_event
	envPPID, envUID, envMountNS, envCgroupID   = HeaderSize, HeaderSize + 4, HeaderSize + 8, HeaderSize + 16
	envLen, envTruncated, envCwdLen, envExeLen = HeaderSize + 24, HeaderSize + 26, HeaderSize + 28, HeaderSize + 30
	envCwdComplete, envExeComplete             = HeaderSize + 32, HeaderSize + 34
	envCwd, envExe, envEnviron, envEventSize   = HeaderSize + 40, envCwd + walkMax, envExe + walkMax, envEnviron + envMax

	// struct gp_exit_event
	exitPPID, exitUID, exitCode                     = HeaderSize, HeaderSize + 4, HeaderSize + 8
	exitCgroupID, exitStart, exitDuration, exitComm = HeaderSize + 16, HeaderSize + 24, HeaderSize + 32, HeaderSize + 40
	exitEventSize                                   = exitComm + commLen

	// struct gp_file_event
	fileSyscall, fileErr, fileClass, filePathLen, filePath = HeaderSize, HeaderSize + 4, HeaderSize + 8, HeaderSize + 10, HeaderSize + 16
	fileEventSize                                          = filePath + pathMax

	// struct gp_connect_event
	connectPeer, connectRet, connectDuration, connectEventSize = HeaderSize, HeaderSize + PeerSize, HeaderSize + 24, HeaderSize + 32

	// struct gp_peer
	peerFamily, peerPort, peerAddr = 0, 2, 4
)

// recordSizes are the sizes of the sensor's own records.
var recordSizes = map[EventType]int{
	TypeExec:        execEventSize,
	TypeExit:        exitEventSize,
	TypeFileFailure: fileEventSize,
	TypeConnect:     connectEventSize,
	TypeEnv:         envEventSize,
}

var errShort = errors.New("record too short")

// Decode decodes one ring-buffer record. It never panics: a malformed
// record is an error.
func Decode(raw []byte) (Event, error) {
	if len(raw) < HeaderSize {
		return nil, fmt.Errorf("decode event: %d bytes: %w", len(raw), errShort)
	}
	le := binary.LittleEndian
	h := Header{
		Type:    EventType(le.Uint16(raw[hdrType:])),
		Size:    le.Uint16(raw[hdrSize:]),
		PID:     le.Uint32(raw[hdrPID:]),
		TID:     le.Uint32(raw[hdrTID:]),
		RootPID: le.Uint32(raw[hdrRootPID:]),
		Time:    time.Duration(le.Uint64(raw[hdrTime:])),
	}
	if int(h.Size) < HeaderSize || int(h.Size) > len(raw) {
		return nil, fmt.Errorf("decode %s event: header size %d, record %d bytes", h.Type, h.Size, len(raw))
	}
	rec := raw[:h.Size]
	if n, ok := recordSizes[h.Type]; ok && int(h.Size) < n {
		return nil, fmt.Errorf("decode %s event: %d bytes, want %d: %w", h.Type, h.Size, n, errShort)
	}
	switch h.Type {
	case TypeExec:
		return decodeExec(h, rec), nil
	case TypeExit:
		return decodeExit(h, rec), nil
	case TypeFileFailure:
		return decodeFile(h, rec), nil
	case TypeConnect:
		return decodeConnect(h, rec), nil
	case TypeEnv:
		return decodeEnv(h, rec), nil
	}
	decodersMu.RLock()
	ext, ok := decoders[h.Type]
	decodersMu.RUnlock()
	if !ok {
		return nil, &UnknownTypeError{Type: h.Type}
	}
	return ext.decode(h, rec[HeaderSize:])
}

// UnknownTypeError is a record of a type no decoder is registered for.
type UnknownTypeError struct{ Type EventType }

func (e *UnknownTypeError) Error() string {
	return fmt.Sprintf("decode event: unknown type %d", uint16(e.Type))
}

// The decoders below read a record of at least the type's size (Decode
// checked it), at the offsets of the layout constants.

func decodeExec(h Header, rec []byte) *ExecEvent {
	le := binary.LittleEndian
	nameLen := min(int(le.Uint16(rec[execNameLen:])), pathMax)
	argsLen := min(int(le.Uint16(rec[execArgsLen:])), argsMax)
	ev := &ExecEvent{
		Header:        h,
		PPID:          le.Uint32(rec[execPPID:]),
		UID:           le.Uint32(rec[execUID:]),
		CgroupID:      le.Uint64(rec[execCgroupID:]),
		Start:         time.Duration(le.Uint64(rec[execStart:])),
		ArgsTruncated: le.Uint16(rec[execArgsTruncated:]) != 0,
		Comm:          cString(rec[execComm : execComm+commLen]),
		Filename:      cString(rec[execFilename : execFilename+nameLen]),
	}
	args := bytes.TrimSuffix(rec[execArgs:execArgs+argsLen], []byte{0})
	if len(args) > 0 {
		ev.Args = strings.Split(string(args), "\x00")
	}
	return ev
}

func decodeEnv(h Header, rec []byte) *EnvEvent {
	le := binary.LittleEndian
	ev := &EnvEvent{
		Header:           h,
		PPID:             le.Uint32(rec[envPPID:]),
		UID:              le.Uint32(rec[envUID:]),
		MountNS:          le.Uint64(rec[envMountNS:]),
		CgroupID:         le.Uint64(rec[envCgroupID:]),
		EnvironTruncated: le.Uint16(rec[envTruncated:]) != 0,
	}
	if le.Uint16(rec[envCwdComplete:]) != 0 {
		ev.Cwd = walkedPath(rec[envCwd : envCwd+min(int(le.Uint16(rec[envCwdLen:])), walkMax)])
	}
	if le.Uint16(rec[envExeComplete:]) != 0 {
		ev.Exe = walkedPath(rec[envExe : envExe+min(int(le.Uint16(rec[envExeLen:])), walkMax)])
	}
	n := min(int(le.Uint16(rec[envLen:])), envMax)
	ev.Environ = bytes.Clone(rec[envEnviron : envEnviron+n])
	return ev
}

// walkedPath turns gp_walk's components, leaf first and each ended by a
// NUL ("go\0bin\0usr\0"), into a path ("/usr/bin/go"). The walk of the
// root itself is empty: "/".
func walkedPath(b []byte) string {
	if len(b) == 0 {
		return "/"
	}
	parts := strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00")
	slices.Reverse(parts)
	return "/" + strings.Join(parts, "/")
}

func decodeExit(h Header, rec []byte) *ExitEvent {
	le := binary.LittleEndian
	return &ExitEvent{
		Header:     h,
		PPID:       le.Uint32(rec[exitPPID:]),
		UID:        le.Uint32(rec[exitUID:]),
		WaitStatus: int32(le.Uint32(rec[exitCode:])),
		CgroupID:   le.Uint64(rec[exitCgroupID:]),
		Start:      time.Duration(le.Uint64(rec[exitStart:])),
		Duration:   time.Duration(le.Uint64(rec[exitDuration:])),
		Comm:       cString(rec[exitComm : exitComm+commLen]),
	}
}

func decodeFile(h Header, rec []byte) *FileFailureEvent {
	le := binary.LittleEndian
	errno := syscall.Errno(le.Uint32(rec[fileErr:]))
	pathLen := min(int(le.Uint16(rec[filePathLen:])), pathMax)
	return &FileFailureEvent{
		Header:  h,
		Syscall: syscallName(le.Uint32(rec[fileSyscall:])),
		Errno:   errno,
		Error:   ErrnoName(errno),
		Class:   Class(le.Uint16(rec[fileClass:])),
		Path:    cString(rec[filePath : filePath+pathLen]),
	}
}

func decodeConnect(h Header, rec []byte) *ConnectEvent {
	le := binary.LittleEndian
	ev := &ConnectEvent{Header: h, Addr: DecodePeer(rec[connectPeer : connectPeer+PeerSize])}
	if ret := int32(le.Uint32(rec[connectRet:])); ret < 0 {
		ev.Errno = syscall.Errno(-ret)
		ev.Error = ErrnoName(ev.Errno)
	}
	ev.Duration = time.Duration(le.Uint64(rec[connectDuration:]))
	return ev
}

// PeerSize is the size of struct gp_peer (c/gopatrol.h).
const PeerSize = 20

// DecodePeer decodes a struct gp_peer: the zero AddrPort when the family
// is neither IPv4 nor IPv6.
func DecodePeer(b []byte) netip.AddrPort {
	le := binary.LittleEndian
	port := le.Uint16(b[peerPort:])
	switch le.Uint16(b[peerFamily:]) {
	case syscall.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[peerAddr:peerAddr+4])), port)
	case syscall.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[peerAddr:peerAddr+16])).Unmap(), port)
	}
	return netip.AddrPort{}
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

var syscallNames = map[uint32]string{
	2: "open", 4: "stat", 6: "lstat", 21: "access", 59: "execve", 76: "truncate",
	82: "rename", 83: "mkdir", 84: "rmdir", 85: "creat", 86: "link", 87: "unlink",
	88: "symlink", 90: "chmod", 92: "chown", 257: "openat", 258: "mkdirat",
	260: "fchownat", 262: "newfstatat", 263: "unlinkat", 264: "renameat",
	265: "linkat", 266: "symlinkat", 268: "fchmodat", 269: "faccessat",
	316: "renameat2", 322: "execveat", 332: "statx", 437: "openat2", 439: "faccessat2",
}

// unknownSyscall is GP_NR_UNKNOWN: the Go error-branch probe runs after the
// syscall number is gone.
const unknownSyscall = 0xffffffff

func syscallName(nr uint32) string {
	if nr == unknownSyscall {
		return ""
	}
	if s, ok := syscallNames[nr]; ok {
		return s
	}
	return fmt.Sprintf("syscall%d", nr)
}
