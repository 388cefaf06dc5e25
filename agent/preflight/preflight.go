package preflight

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/bpf/feature"
)

// Capability numbers from linux/capability.h.
const (
	CapDacReadSearch = 2
	CapSetgid        = 6
	CapSetuid        = 7
	CapSysChroot     = 18
	CapSysAdmin      = 21
	CapPerfmon       = 38
	CapBPF           = 39
)

// CapNames names the capabilities the preflight knows, as capabilities(7)
// spells them.
var CapNames = map[int]string{
	CapDacReadSearch: "CAP_DAC_READ_SEARCH",
	CapSetgid:        "CAP_SETGID",
	CapSetuid:        "CAP_SETUID",
	CapSysChroot:     "CAP_SYS_CHROOT",
	CapSysAdmin:      "CAP_SYS_ADMIN",
	CapPerfmon:       "CAP_PERFMON",
	CapBPF:           "CAP_BPF",
}

// costSensors is what the agent loses without the eBPF sensors.
const costSensors = "eBPF sensors off: no toolchain execs, build durations, file-access failures, connects or TLS handshakes (the checks and the export still run)"

// Options is what the agent would run with.
type Options struct {
	// HostRoot is the node's filesystem as the agent sees it ("/" or
	// "/host").
	HostRoot string
	// StateDir must be a writable directory.
	StateDir string
	// Sensors and TLS say which sensors the config turns on; RequireSensors
	// makes their parts required.
	Sensors, TLS, RequireSensors bool
	// AsUser is checks.as_user: non-empty needs CAP_SETUID and CAP_SETGID.
	AsUser string
	// PluginsDir is plugins.dir: when set, the agent refuses to start
	// without it.
	PluginsDir string
	// RingSize is sensors.ring_size, the memory the memlock limit must
	// allow on kernels that still charge it.
	RingSize int
	// Proc and Sys are where procfs and sysfs are read ("/proc", "/sys"
	// when empty).
	Proc, Sys string
	// Caps is the effective capability set; nil reads this process's.
	Caps func() (uint64, error)
	// Kernel probes the BPF ring buffer once the privileges are there; nil
	// is feature.Check.
	Kernel func() error
	// Uprobe attaches and detaches a uprobe as the sensors would; nil is
	// ProbeUprobe.
	Uprobe func() error
}

// need is a capability the config needs, and why.
type need struct {
	cap              int
	required, sensor bool
	why, cost        string
}

// needs lists the capabilities that o needs, in a stable order.
func needs(o Options) []need {
	var ns []need
	if o.Sensors {
		for _, c := range []int{CapBPF, CapPerfmon} {
			ns = append(ns, need{c, o.RequireSensors, true, "load and attach the eBPF sensors", costSensors})
		}
	}
	if o.HostRoot != "" && o.HostRoot != "/" {
		ns = append(ns, need{CapSysChroot, true, false, "run the checks' commands chrooted into the host root " + o.HostRoot,
			"the checks cannot run against the host's toolchain"})
	}
	if o.AsUser != "" {
		for _, c := range []int{CapSetuid, CapSetgid} {
			ns = append(ns, need{c, true, false, "run the checks as checks.as_user " + o.AsUser, "the checks cannot probe as the build user"})
		}
	}
	return ns
}

// NeededCaps names the capabilities an agent with options o needs (as
// capabilities(7) spells them): what a DaemonSet or a systemd unit grants
// and nothing more; the manifests' tests hold them to it.
func NeededCaps(o Options) []string {
	var names []string
	for _, n := range needs(o) {
		names = append(names, CapNames[n.cap])
	}
	return names
}

// Item is one finding.
type Item struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Required bool   `json:"required"`
	// Found is what was seen, Fix what to do when not OK, Cost what stays
	// off meanwhile.
	Found string `json:"found"`
	Fix   string `json:"fix,omitempty"`
	Cost  string `json:"cost,omitempty"`
}

// Report is the preflight's result.
type Report struct {
	HostRoot string `json:"host_root"`
	StateDir string `json:"state_dir"`
	Items    []Item `json:"items"`
	// OK is false when a required item is missing (exit 1).
	OK bool `json:"ok"`
	// Degraded is true when an optional item is missing: the agent runs
	// without what its Cost names.
	Degraded bool `json:"degraded"`
}

// Missing returns the items that are not OK.
func (r Report) Missing() []Item {
	var m []Item
	for _, it := range r.Items {
		if !it.OK {
			m = append(m, it)
		}
	}
	return m
}

// Run inspects the node. It changes nothing but a probe file in the state
// directory, removed at once, and the directory itself when it was absent.
func Run(o Options) Report {
	if o.Proc == "" {
		o.Proc = "/proc"
	}
	if o.Sys == "" {
		o.Sys = "/sys"
	}
	if o.Caps == nil {
		o.Caps = feature.EffectiveCaps
	}
	if o.Kernel == nil {
		o.Kernel = feature.Check
	}
	if o.Uprobe == nil {
		o.Uprobe = ProbeUprobe
	}
	r := Report{HostRoot: o.HostRoot, StateDir: o.StateDir}
	add := func(it Item) { r.Items = append(r.Items, it) }

	caps, capErr := o.Caps()
	has := func(c int) bool { return capErr == nil && caps&(1<<c) != 0 }
	sensReq := o.Sensors && o.RequireSensors

	// The sensors: CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN that stands in
	// for both on every kernel.
	sensorsPriv := has(CapSysAdmin) || (has(CapBPF) && has(CapPerfmon))
	for _, n := range needs(o) {
		add(capItem(n.cap, has, capErr, n.required, n.why, n.cost, n.sensor && has(CapSysAdmin)))
	}
	if o.Sensors {
		add(btfItem(o.Sys, sensReq))
		pmu := uprobeItem(o.Sys, o.TLS && sensReq)
		add(pmu)
		if pmu.OK && sensorsPriv {
			// The PMU existing is not the kernel letting this process
			// use it: some keep it to CAP_SYS_ADMIN.
			add(uprobeAttachItem(o.Uprobe, has, sensReq))
		}
		add(lockdownItem(o.Sys, sensReq))
		add(paranoidItem(o.Proc, sensorsPriv || has(CapPerfmon), sensReq))
		add(memlockItem(o.Proc, o.RingSize, sensReq))
		add(tracefsItem(o.Sys))
		if sensorsPriv {
			add(kernelItem(o.Kernel, sensReq))
		}
	}
	add(hostRootItem(o.HostRoot))
	if o.PluginsDir != "" {
		add(pluginsItem(o.PluginsDir))
	}
	add(stateDirItem(o.StateDir))

	r.OK = true
	for _, it := range r.Items {
		if it.OK {
			continue
		}
		if it.Required {
			r.OK = false
		} else {
			r.Degraded = true
		}
	}
	return r
}

func capItem(c int, has func(int) bool, capErr error, required bool, why, cost string, adminStandsIn bool) Item {
	name := CapNames[c]
	it := Item{Name: name, Required: required}
	switch {
	case capErr != nil:
		it.Found = fmt.Sprintf("cannot read the capability set: %v", capErr)
	case has(c):
		it.OK, it.Found = true, "held"
		return it
	case adminStandsIn:
		it.OK, it.Found = true, "not held; CAP_SYS_ADMIN stands in for it"
		return it
	default:
		it.Found = "not held"
	}
	short := strings.TrimPrefix(name, "CAP_")
	it.Fix = fmt.Sprintf("grant %s to %s (Kubernetes: securityContext.capabilities.add: [%s]; systemd: AmbientCapabilities=%s)", name, why, short, name)
	it.Cost = cost
	return it
}

func btfItem(sys string, required bool) Item {
	p := filepath.Join(sys, "kernel/btf/vmlinux")
	it := Item{Name: "kernel BTF", Required: required}
	if fi, err := os.Stat(p); err != nil {
		it.Found = fmt.Sprintf("%s: %v", p, unwrapPath(err))
		it.Fix = "run a kernel built with CONFIG_DEBUG_INFO_BTF=y (every current EKS, ACK and RHCOS node image is); in a container, do not mask /sys"
		it.Cost = costSensors
	} else {
		it.OK, it.Found = true, fmt.Sprintf("%s (%d bytes)", p, fi.Size())
	}
	return it
}

func uprobeItem(sys string, required bool) Item {
	p := filepath.Join(sys, "bus/event_source/devices/uprobe/type")
	it := Item{Name: "uprobes", Required: required}
	b, err := os.ReadFile(p)
	if err != nil {
		it.Found = fmt.Sprintf("no uprobe PMU: %v", unwrapPath(err))
		it.Fix = "run a kernel with CONFIG_UPROBE_EVENTS=y"
		it.Cost = "TLS handshake probes and the Go syscall-error probes off (execs, file access and connects still recorded)"
		return it
	}
	it.OK, it.Found = true, "uprobe PMU type "+strings.TrimSpace(string(b))
	return it
}

func lockdownItem(sys string, required bool) Item {
	p := filepath.Join(sys, "kernel/security/lockdown")
	it := Item{Name: "lockdown", Required: required, OK: true}
	b, err := os.ReadFile(p)
	if err != nil {
		// No securityfs here (or no lockdown LSM): nothing locks BPF down.
		it.Found = "no lockdown LSM state at " + p + " (not locked down)"
		return it
	}
	mode := selected(string(b))
	it.Found = "mode " + mode
	if mode == "confidentiality" {
		it.OK = false
		it.Fix = "boot without lockdown=confidentiality (Secure Boot kernels may set it): it forbids BPF programs reading kernel memory"
		it.Cost = costSensors
	}
	return it
}

// selected returns the bracketed word of a sysfs choice list such as
// "none [integrity] confidentiality".
func selected(s string) string {
	if _, after, ok := strings.Cut(s, "["); ok {
		if v, _, ok := strings.Cut(after, "]"); ok {
			return v
		}
	}
	return strings.TrimSpace(s)
}

func paranoidItem(proc string, perfmon, required bool) Item {
	p := filepath.Join(proc, "sys/kernel/perf_event_paranoid")
	it := Item{Name: "perf_event_paranoid", Required: required}
	b, err := os.ReadFile(p)
	if err != nil {
		it.Found = fmt.Sprintf("cannot read: %v", unwrapPath(err))
		it.OK = perfmon // with CAP_PERFMON the value does not matter
		if !it.OK {
			it.Fix, it.Cost = "grant CAP_PERFMON", costSensors
		}
		return it
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		it.Found = fmt.Sprintf("%q is not a number", strings.TrimSpace(string(b)))
		it.OK = perfmon
		return it
	}
	it.Found = strconv.Itoa(v)
	switch {
	case perfmon:
		it.OK = true
		it.Found += " (CAP_PERFMON overrides it)"
	case v <= 1:
		it.OK = true
	default:
		it.Fix = "grant CAP_PERFMON (preferred), or lower kernel.perf_event_paranoid to 1"
		it.Cost = costSensors
	}
	return it
}

// memlockItem: since Linux 5.11 BPF memory is charged to the memory cgroup
// and RLIMIT_MEMLOCK does not apply; before, the ring buffer and maps must
// fit under it.
func memlockItem(proc string, ring int, required bool) Item {
	it := Item{Name: "memlock", Required: required}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		it.Found = fmt.Sprintf("getrlimit: %v", err)
		return it
	}
	limit := "unlimited"
	if lim.Cur != unix.RLIM_INFINITY {
		limit = fmt.Sprintf("%d KiB", lim.Cur/1024)
	}
	rel, _ := os.ReadFile(filepath.Join(proc, "sys/kernel/osrelease"))
	release := strings.TrimSpace(string(rel))
	if charged(release) {
		it.OK = true
		it.Found = fmt.Sprintf("%s; kernel %s charges BPF memory to the cgroup, the limit does not apply", limit, release)
		return it
	}
	// The ring buffer plus room for the maps and programs.
	need := uint64(ring) + 8<<20
	it.Found = fmt.Sprintf("%s; kernel %s charges BPF memory to RLIMIT_MEMLOCK, the sensors need about %d KiB", limit, release, need/1024)
	if lim.Cur == unix.RLIM_INFINITY || lim.Cur >= need {
		it.OK = true
		return it
	}
	it.Fix = "raise the memlock limit (systemd: LimitMEMLOCK=infinity; containers: the runtime's default ulimit) or run Linux 5.11+"
	it.Cost = costSensors
	return it
}

// charged reports whether the kernel release is 5.11 or later.
func charged(release string) bool {
	var maj, min int
	if _, err := fmt.Sscanf(release, "%d.%d", &maj, &min); err != nil {
		return false
	}
	return maj > 5 || (maj == 5 && min >= 11)
}

// tracefsItem: the sensors attach by BTF (tp_btf) and the uprobe PMU, so
// tracefs is not needed; it is reported because tools that debug them
// (bpftool prog tracelog, trace_pipe) read it.
func tracefsItem(sys string) Item {
	it := Item{Name: "tracefs", OK: true}
	for _, d := range []string{"kernel/tracing", "kernel/debug/tracing"} {
		p := filepath.Join(sys, d)
		if _, err := os.Stat(filepath.Join(p, "events")); err == nil {
			it.Found = "mounted at " + p
			return it
		}
	}
	it.Found = "not mounted (not needed: the sensors attach through BTF and the uprobe PMU; only trace_pipe debugging needs it)"
	return it
}

func kernelItem(probe func() error, required bool) Item {
	it := Item{Name: "BPF ring buffer", Required: required}
	if err := probe(); err != nil {
		it.Found = err.Error()
		it.Fix = "run Linux 5.8+ with BPF enabled"
		it.Cost = costSensors
		return it
	}
	it.OK, it.Found = true, "a ring buffer map loads"
	return it
}

// hostRootItem: the host root must be a directory that looks like a root
// file system; under a DaemonSet it should be the read-only /host mount.
func hostRootItem(root string) Item {
	it := Item{Name: "host root", Required: true}
	if root == "" {
		root = "/"
	}
	fi, err := os.Stat(root)
	if err != nil || !fi.IsDir() {
		it.Found = fmt.Sprintf("%s is not a directory: %v", root, unwrapPath(err))
		it.Fix = "mount the node's / at " + root + " (hostPath /, readOnly: true) or set host_root"
		it.Cost = "the checks cannot run"
		return it
	}
	var missing []string
	for _, d := range []string{"etc", "usr"} {
		if _, err := os.Stat(filepath.Join(root, d)); err != nil {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		it.Found = fmt.Sprintf("%s has no %s: not a root file system", root, strings.Join(missing, ", "))
		it.Fix = "mount the node's / at " + root + " (hostPath /, readOnly: true)"
		it.Cost = "the checks would inspect an empty tree"
		return it
	}
	it.OK = true
	it.Found = root
	var st unix.Statfs_t
	if root != "/" && unix.Statfs(root, &st) == nil {
		if st.Flags&unix.ST_RDONLY != 0 {
			it.Found += " (read-only)"
		} else {
			it.Found += " (writable: mount it read-only, the agent never writes there)"
		}
	}
	return it
}

// pluginsItem: a configured plugin directory that is absent stops the
// agent at start, so it is required.
func pluginsItem(dir string) Item {
	it := Item{Name: "plugins dir", Required: true}
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		it.Found = fmt.Sprintf("%s: %v", dir, unwrapPath(err))
	case !fi.IsDir():
		it.Found = dir + " is not a directory"
	default:
		it.OK, it.Found = true, dir
		return it
	}
	it.Fix = "install the probe plugins and their SHA256SUMS at " + dir + " (the image has them), or set plugins.dir to \"\" for none"
	it.Cost = "the agent does not start"
	return it
}

func stateDirItem(dir string) Item {
	it := Item{Name: "state dir", Required: true}
	fail := func(err error) Item {
		it.Found = fmt.Sprintf("%s: %v", dir, unwrapPath(err))
		it.Fix = "give the agent a writable directory at " + dir + " (Kubernetes: hostPath /var/lib/gopatrol, DirectoryOrCreate; systemd: StateDirectory=gopatrol) or set state_dir"
		it.Cost = "the rule engine cannot keep baselines, its audit log or its outbox"
		return it
	}
	if !filepath.IsAbs(dir) {
		return fail(errors.New("not an absolute path"))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	f, err := os.CreateTemp(dir, ".preflight-*")
	if err != nil {
		return fail(fmt.Errorf("not writable: %w", err))
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fail(err)
	}
	it.OK, it.Found = true, dir+" (writable)"
	return it
}

// unwrapPath drops the path a *PathError repeats, the caller names it.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
