package feature

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
)

// BTFPath is where the kernel publishes its own type information; CO-RE
// relocations of the sensors are resolved against it.
const BTFPath = "/sys/kernel/btf/vmlinux"

// Capability numbers from linux/capability.h.
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// MissingError lists every requirement that is not met.
type MissingError struct {
	Missing []string
}

func (e *MissingError) Error() string {
	return "eBPF sensors unavailable: " + strings.Join(e.Missing, "; ")
}

// Check returns nil when the sensors can be loaded, or a *MissingError
// naming each missing privilege or kernel feature.
func Check() error {
	var missing []string
	caps, err := effectiveCaps()
	switch {
	case err != nil:
		missing = append(missing, fmt.Sprintf("cannot read capabilities: %v", err))
	case caps&(1<<capSysAdmin) != 0:
	case caps&(1<<capBPF) == 0 || caps&(1<<capPerfmon) == 0:
		var lack []string
		if caps&(1<<capBPF) == 0 {
			lack = append(lack, "CAP_BPF")
		}
		if caps&(1<<capPerfmon) == 0 {
			lack = append(lack, "CAP_PERFMON")
		}
		missing = append(missing, fmt.Sprintf("needs root or CAP_BPF+CAP_PERFMON (missing %s): run as root or grant them (setcap cap_bpf,cap_perfmon+ep)", strings.Join(lack, "+")))
	}
	if _, err := os.Stat(BTFPath); err != nil {
		missing = append(missing, fmt.Sprintf("kernel BTF %s not found: the kernel needs CONFIG_DEBUG_INFO_BTF=y", BTFPath))
	}
	if len(missing) == 0 {
		// Probing creates a map, which needs the privileges checked above.
		if err := features.HaveMapType(ebpf.RingBuf); err != nil {
			missing = append(missing, fmt.Sprintf("BPF ring buffer not supported (needs Linux 5.8+): %v", err))
		}
	}
	if len(missing) > 0 {
		return &MissingError{Missing: missing}
	}
	return nil
}

// IsMissing reports whether err says a privilege or kernel feature is
// missing, as opposed to a failure of the sensors themselves.
func IsMissing(err error) bool {
	var me *MissingError
	return errors.As(err, &me)
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}
