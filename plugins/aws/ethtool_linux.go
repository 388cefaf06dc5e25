package aws

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ENA driver publishes its allowance counters only as ethtool
// statistics (`ethtool -S eth0`), not in sysfs: they are read here with
// the SIOCETHTOOL ioctl, which needs no credentials and no capability.
const (
	ethtoolGDrvInfo = 0x03
	ethtoolGStrings = 0x1b
	ethtoolGStats   = 0x1d
	ethSSStats      = 1
	ethGStringLen   = 32
	maxStats        = 1 << 14 // a driver with more is lying: do not allocate for it
)

// ifreq is struct ifreq with the ethtool command pointer in its union.
type ifreq struct {
	name [unix.IFNAMSIZ]byte
	data uintptr
	_    [16]byte
}

// drvinfo is struct ethtool_drvinfo.
type drvinfo struct {
	cmd         uint32
	driver      [32]byte
	version     [32]byte
	fwVersion   [32]byte
	busInfo     [32]byte
	eromVersion [32]byte
	reserved2   [12]byte
	nPrivFlags  uint32
	nStats      uint32
	testinfoLen uint32
	eedumpLen   uint32
	regdumpLen  uint32
}

func ethtool(fd int, ifname string, data unsafe.Pointer) error {
	var ifr ifreq
	copy(ifr.name[:unix.IFNAMSIZ-1], ifname)
	ifr.data = uintptr(data)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(data)
	if errno != 0 {
		return errno
	}
	return nil
}

// ethtoolStats returns the interface's driver name and its ethtool
// statistics by name.
func ethtoolStats(ifname string) (string, map[string]uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	di := &drvinfo{cmd: ethtoolGDrvInfo}
	if err := ethtool(fd, ifname, unsafe.Pointer(di)); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV) {
			// No ethtool driver (wireguard, some virtual devices) or
			// gone since it was listed: not ENA, nothing to read.
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("%s: ETHTOOL_GDRVINFO: %w", ifname, err)
	}
	driver := string(bytes.TrimRight(di.driver[:], "\x00"))
	n := di.nStats
	if n == 0 {
		return driver, nil, nil
	}
	if n > maxStats {
		return driver, nil, fmt.Errorf("%s: driver %s claims %d statistics", ifname, driver, n)
	}
	// struct ethtool_gstrings: cmd, string_set, len, then len names.
	sbuf := make([]byte, 12+int(n)*ethGStringLen)
	*(*[3]uint32)(unsafe.Pointer(&sbuf[0])) = [3]uint32{ethtoolGStrings, ethSSStats, n}
	if err := ethtool(fd, ifname, unsafe.Pointer(&sbuf[0])); err != nil {
		return driver, nil, fmt.Errorf("%s: ETHTOOL_GSTRINGS: %w", ifname, err)
	}
	// struct ethtool_stats: cmd, n_stats, then n_stats u64.
	vbuf := make([]uint64, 1+int(n))
	*(*[2]uint32)(unsafe.Pointer(&vbuf[0])) = [2]uint32{ethtoolGStats, n}
	if err := ethtool(fd, ifname, unsafe.Pointer(&vbuf[0])); err != nil {
		return driver, nil, fmt.Errorf("%s: ETHTOOL_GSTATS: %w", ifname, err)
	}
	got := (*[2]uint32)(unsafe.Pointer(&vbuf[0]))[1]
	stats := make(map[string]uint64, n)
	for i := range min(n, got) {
		name := sbuf[12+int(i)*ethGStringLen : 12+int(i+1)*ethGStringLen]
		stats[string(bytes.TrimRight(name, "\x00"))] = vbuf[1+i]
	}
	return driver, stats, nil
}
