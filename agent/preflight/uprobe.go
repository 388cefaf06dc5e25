package preflight

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// costUprobes is what a refused uprobe costs. The Go syscall-error and
// TLS probes are uprobes; the agent attaches its sensors as a whole, so
// today one refused uprobe turns them all off.
const costUprobes = "file-access failures and TLS handshakes not observed (the Go syscall-error and TLS uprobes cannot attach); as the agent attaches its sensors as a whole, all of them stay off: no toolchain execs, build durations or connects either (the checks and the export still run)"

// fixSysAdmin is what to do on kernels that keep the perf_uprobe PMU to
// CAP_SYS_ADMIN.
const fixSysAdmin = "this kernel keeps the perf_uprobe PMU to CAP_SYS_ADMIN even with CAP_PERFMON held: grant CAP_SYS_ADMIN to the agent (Kubernetes: the deploy/kubernetes/components/uprobes-sys-admin component; systemd: add CAP_SYS_ADMIN to AmbientCapabilities and CapabilityBoundingSet)"

// ProbeUprobe proves that this process may attach uprobes the way the
// sensors do: it loads a program that only returns, attaches it to the
// entry of a function of its own executable for every process (pid -1,
// as the sensors' uprobes are), and detaches it at once. A uprobe placed
// for one's own pid goes through other permission checks, so it would
// prove nothing. It takes a few milliseconds.
func ProbeUprobe() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this executable: %w", err)
	}
	off, err := fileOffset("/proc/self/maps", uint64(reflect.ValueOf(uprobeTarget).Pointer()))
	if err != nil {
		return fmt.Errorf("locate the probe site in %s: %w", exe, err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "gp_preflight",
		Type:         ebpf.Kprobe,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "GPL",
	})
	if err != nil {
		return fmt.Errorf("load a uprobe program: %w", err)
	}
	defer prog.Close()
	ex, err := link.OpenExecutable(exe)
	if err != nil {
		return fmt.Errorf("open %s: %w", exe, err)
	}
	l, err := ex.Uprobe("gopatrol-preflight", prog, &link.UprobeOptions{Address: off})
	if err != nil {
		return fmt.Errorf("attach a uprobe to %s+%#x: %w", exe, off, err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("detach the uprobe: %w", err)
	}
	return nil
}

// uprobeTarget is where ProbeUprobe places its uprobe: a function of
// this binary that nothing calls, so that the probe never fires.
//
//go:noinline
func uprobeTarget() int { return 1 }

// fileOffset turns an address of this process into the offset in the
// file mapped there, which is what the uprobe PMU takes; it reads the
// mappings rather than the symbol table, so that stripped binaries (the
// image's) work too.
func fileOffset(maps string, addr uint64) (uint64, error) {
	f, err := os.Open(maps)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(fields[2], 16, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return 0, fmt.Errorf("%s: %q: %w", maps, sc.Text(), err)
		}
		if addr >= start && addr < end {
			return addr - start + off, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s maps no file at %#x", maps, addr)
}

// uprobeAttachItem runs probe, which needs the sensors' privileges, and
// says what a refusal means.
func uprobeAttachItem(probe func() error, has func(int) bool, required bool) Item {
	it := Item{Name: "uprobe attach", Required: required}
	err := probe()
	if err == nil {
		it.OK, it.Found = true, "a uprobe attaches and detaches"
		return it
	}
	it.Found = err.Error()
	it.Cost = costUprobes
	refused := errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
	switch {
	case refused && has(CapPerfmon) && !has(CapSysAdmin):
		it.Found = "refused with CAP_PERFMON held: " + it.Found
		it.Fix = fixSysAdmin
	case refused && has(CapSysAdmin):
		it.Fix = "a security module or lockdown refuses uprobes even to CAP_SYS_ADMIN: allow perf_event_open and bpf for the agent in its policy"
	case refused:
		it.Fix = "grant CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN on kernels that keep the perf_uprobe PMU to it"
	default:
		it.Fix = "run a kernel with CONFIG_UPROBE_EVENTS=y and a mounted /proc; the error above names what failed"
	}
	return it
}
