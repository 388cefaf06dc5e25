package bpf

import (
	"fmt"
	"syscall"
)

// Class is the toolchain directory a failing path is under, decided in the
// kernel by longest prefix (c/sensor.bpf.c, gp_classes).
type Class uint16

const (
	ClassOther      Class = 0 // absolute path under none of the directories
	ClassGOROOT     Class = 1
	ClassGOMODCACHE Class = 2
	ClassGOCACHE    Class = 3
	ClassGOBIN      Class = 4
	ClassGOTMPDIR   Class = 5
	// ClassRelative counts relative paths: the kernel side does not resolve
	// them against the working directory or a dirfd, so they stay unclassified.
	ClassRelative Class = 15

	numClasses = 16
)

var classNames = map[Class]string{
	ClassOther:      "other",
	ClassGOROOT:     "goroot",
	ClassGOMODCACHE: "gomodcache",
	ClassGOCACHE:    "gocache",
	ClassGOBIN:      "gobin",
	ClassGOTMPDIR:   "gotmpdir",
	ClassRelative:   "relative",
}

func (c Class) String() string {
	if s, ok := classNames[c]; ok {
		return s
	}
	return fmt.Sprintf("class%d", uint16(c))
}

// MarshalText writes the class name in JSON.
func (c Class) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// countedErrnos are the failures the kernel counts, in the order of its
// counter slots (GP_ERR_* in sensor.bpf.c). ENOENT is counted, never
// streamed.
var countedErrnos = [...]syscall.Errno{syscall.EACCES, syscall.EPERM, syscall.EROFS, syscall.ENOENT}

var errnoNames = map[syscall.Errno]string{
	syscall.EACCES: "EACCES", syscall.EPERM: "EPERM", syscall.EROFS: "EROFS",
	syscall.ENOENT: "ENOENT", syscall.EINPROGRESS: "EINPROGRESS",
	syscall.ECONNREFUSED: "ECONNREFUSED", syscall.ENETUNREACH: "ENETUNREACH",
	syscall.EHOSTUNREACH: "EHOSTUNREACH", syscall.ETIMEDOUT: "ETIMEDOUT",
	syscall.EADDRNOTAVAIL: "EADDRNOTAVAIL", syscall.EAGAIN: "EAGAIN",
	syscall.EINTR: "EINTR", syscall.EALREADY: "EALREADY", syscall.EISCONN: "EISCONN",
}

// ErrnoName is the C name of errno ("EACCES"), "" for 0.
func ErrnoName(e syscall.Errno) string {
	if e == 0 {
		return ""
	}
	if s, ok := errnoNames[e]; ok && s != "" {
		return s
	}
	return fmt.Sprintf("errno%d", int(e))
}
