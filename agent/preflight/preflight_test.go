package preflight

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// node builds a real procfs/sysfs look-alike and a host root in a temp
// dir; files maps paths under it to contents.
func node(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, v := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func caps(cs ...int) func() (uint64, error) {
	return func() (uint64, error) {
		var m uint64
		for _, c := range cs {
			m |= 1 << c
		}
		return m, nil
	}
}

// eacces is how the kernel refuses the perf_uprobe PMU, wrapped as
// cilium/ebpf wraps it.
var eacces = fmt.Errorf("attach a uprobe: creating perf_uprobe PMU: opening perf event: %w", unix.EACCES)

var healthy = map[string]string{
	"sys/kernel/btf/vmlinux":                   "btf",
	"sys/bus/event_source/devices/uprobe/type": "8\n",
	"sys/kernel/security/lockdown":             "[none] integrity confidentiality\n",
	"sys/kernel/tracing/events/.keep":          "",
	"proc/sys/kernel/perf_event_paranoid":      "2\n",
	"proc/sys/kernel/osrelease":                "6.8.0-1\n",
	"host/etc/os-release":                      "ID=debian\n",
	"host/usr/bin/.keep":                       "",
}

func with(over map[string]string, drop ...string) map[string]string {
	m := map[string]string{}
	for k, v := range healthy {
		m[k] = v
	}
	for k, v := range over {
		m[k] = v
	}
	for _, k := range drop {
		delete(m, k)
	}
	return m
}

func TestRun(t *testing.T) {
	sensorCaps := caps(CapBPF, CapPerfmon, CapSysChroot)
	for _, tt := range []struct {
		name     string
		files    map[string]string
		caps     func() (uint64, error)
		require  bool
		asUser   string
		kernel   error
		uprobe   error
		verdict  string
		missing  []string // item names not OK
		costLike string   // a missing item's cost contains this
		fixLike  string   // a missing item's fix contains this
	}{
		{name: "healthy node", files: healthy, caps: sensorCaps, verdict: "ready"},
		{name: "CAP_SYS_ADMIN stands in for BPF and PERFMON", files: healthy, caps: caps(CapSysAdmin, CapSysChroot), verdict: "ready"},
		{name: "no CAP_BPF degrades", files: healthy, caps: caps(CapPerfmon, CapSysChroot), verdict: "degraded", missing: []string{"CAP_BPF"}, costLike: "eBPF sensors off"},
		{name: "no CAP_BPF with require-sensors fails", files: healthy, caps: caps(CapPerfmon, CapSysChroot), require: true, verdict: "not-ready", missing: []string{"CAP_BPF"}},
		{name: "no CAP_SYS_CHROOT fails", files: healthy, caps: caps(CapBPF, CapPerfmon), verdict: "not-ready", missing: []string{"CAP_SYS_CHROOT"}, costLike: "host's toolchain"},
		{name: "as_user needs setuid and setgid", files: healthy, caps: sensorCaps, asUser: "build", verdict: "not-ready", missing: []string{"CAP_SETUID", "CAP_SETGID"}},
		{name: "no BTF", files: with(nil, "sys/kernel/btf/vmlinux"), caps: sensorCaps, verdict: "degraded", missing: []string{"kernel BTF"}, costLike: "eBPF sensors off"},
		{name: "no uprobes", files: with(nil, "sys/bus/event_source/devices/uprobe/type"), caps: sensorCaps, verdict: "degraded", missing: []string{"uprobes"}, costLike: "TLS handshake"},
		{name: "lockdown confidentiality", files: with(map[string]string{"sys/kernel/security/lockdown": "none integrity [confidentiality]\n"}), caps: sensorCaps, verdict: "degraded", missing: []string{"lockdown"}},
		{name: "lockdown integrity is fine", files: with(map[string]string{"sys/kernel/security/lockdown": "none [integrity] confidentiality\n"}), caps: sensorCaps, verdict: "ready"},
		{name: "paranoid 3 without PERFMON", files: with(map[string]string{"proc/sys/kernel/perf_event_paranoid": "3\n"}), caps: caps(CapBPF, CapSysChroot), verdict: "degraded", missing: []string{"CAP_PERFMON", "perf_event_paranoid"}},
		{name: "no tracefs is not a loss", files: with(nil, "sys/kernel/tracing/events/.keep"), caps: sensorCaps, verdict: "ready"},
		{name: "ring buffer probe fails", files: healthy, caps: sensorCaps, kernel: errors.New("ring buffer: operation not supported"), verdict: "degraded", missing: []string{"BPF ring buffer"}},
		{name: "empty host root", files: with(nil, "host/etc/os-release", "host/usr/bin/.keep"), caps: sensorCaps, verdict: "not-ready", missing: []string{"host root"}},
		{name: "uprobe refused with CAP_PERFMON held names CAP_SYS_ADMIN", files: healthy, caps: sensorCaps, uprobe: eacces, verdict: "degraded", missing: []string{"uprobe attach"}, costLike: "file-access failures and TLS handshakes not observed", fixLike: "CAP_SYS_ADMIN"},
		{name: "uprobe refused, sensors required", files: healthy, caps: sensorCaps, require: true, uprobe: eacces, verdict: "not-ready", missing: []string{"uprobe attach"}, fixLike: "uprobes-sys-admin"},
		{name: "uprobe refused to CAP_SYS_ADMIN is not the capability", files: healthy, caps: caps(CapSysAdmin, CapSysChroot), uprobe: eacces, verdict: "degraded", missing: []string{"uprobe attach"}, fixLike: "security module"},
		{name: "uprobe attach fails otherwise", files: healthy, caps: sensorCaps, uprobe: errors.New("open /proc/self/maps: no such file"), verdict: "degraded", missing: []string{"uprobe attach"}, fixLike: "CONFIG_UPROBE_EVENTS"},
		{name: "no uprobe PMU, no attach tried", files: with(nil, "sys/bus/event_source/devices/uprobe/type"), caps: sensorCaps, uprobe: eacces, verdict: "degraded", missing: []string{"uprobes"}},
		{name: "no sensor privileges, no attach tried", files: healthy, caps: caps(CapPerfmon, CapSysChroot), uprobe: eacces, verdict: "degraded", missing: []string{"CAP_BPF"}},
		{name: "cannot read caps", files: healthy, caps: func() (uint64, error) { return 0, errors.New("no CapEff") }, verdict: "not-ready", missing: []string{"CAP_BPF", "CAP_PERFMON", "CAP_SYS_CHROOT", "perf_event_paranoid"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := node(t, tt.files)
			r := Run(Options{
				HostRoot: filepath.Join(dir, "host"), StateDir: filepath.Join(dir, "state"),
				Sensors: true, TLS: true, RequireSensors: tt.require, AsUser: tt.asUser, RingSize: 1 << 20,
				Proc: filepath.Join(dir, "proc"), Sys: filepath.Join(dir, "sys"),
				Caps: tt.caps, Kernel: func() error { return tt.kernel }, Uprobe: func() error { return tt.uprobe },
			})
			if got := r.Verdict(); got != tt.verdict {
				t.Errorf("verdict %s, want %s; items %+v", got, tt.verdict, r.Items)
			}
			var names []string
			for _, it := range r.Missing() {
				names = append(names, it.Name)
				if it.Fix == "" || it.Cost == "" {
					t.Errorf("%s missing without fix or cost: %+v", it.Name, it)
				}
				if tt.costLike != "" && !strings.Contains(it.Cost, tt.costLike) {
					t.Errorf("%s cost %q, want it to name %q", it.Name, it.Cost, tt.costLike)
				}
				if tt.fixLike != "" && !strings.Contains(it.Fix, tt.fixLike) {
					t.Errorf("%s fix %q, want it to name %q", it.Name, it.Fix, tt.fixLike)
				}
			}
			if strings.Join(names, ",") != strings.Join(tt.missing, ",") {
				t.Errorf("missing %v, want %v", names, tt.missing)
			}
			var out bytes.Buffer
			if err := r.WriteText(&out); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "preflight: "+tt.verdict) {
				t.Errorf("text has no verdict line:\n%s", out.String())
			}
			for _, n := range tt.missing {
				if !strings.Contains(out.String(), n) {
					t.Errorf("text does not name %s:\n%s", n, out.String())
				}
			}
		})
	}
}

func TestSensorsOffSkipsTheirParts(t *testing.T) {
	dir := node(t, with(nil, "sys/kernel/btf/vmlinux"))
	r := Run(Options{HostRoot: filepath.Join(dir, "host"), StateDir: filepath.Join(dir, "state"),
		Proc: filepath.Join(dir, "proc"), Sys: filepath.Join(dir, "sys"), Caps: caps(CapSysChroot)})
	if r.Verdict() != "ready" {
		t.Errorf("sensors.enabled=false: verdict %s, want ready; %+v", r.Verdict(), r.Missing())
	}
}

func TestPluginsDir(t *testing.T) {
	dir := node(t, healthy)
	for _, tt := range []struct {
		plugins string
		verdict string
	}{
		{filepath.Join(dir, "host"), "ready"},
		{filepath.Join(dir, "absent"), "not-ready"},
		{filepath.Join(dir, "host/etc/os-release"), "not-ready"},
	} {
		r := Run(Options{HostRoot: filepath.Join(dir, "host"), StateDir: filepath.Join(dir, "state"), PluginsDir: tt.plugins,
			Proc: filepath.Join(dir, "proc"), Sys: filepath.Join(dir, "sys"), Caps: caps(CapSysChroot)})
		if r.Verdict() != tt.verdict {
			t.Errorf("plugins.dir %s: verdict %s, want %s (%+v)", tt.plugins, r.Verdict(), tt.verdict, r.Missing())
		}
	}
}

func TestStateDir(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dir string
		ok  bool
	}{
		{filepath.Join(dir, "new", "state"), true}, // created
		{"relative/state", false},
		{filepath.Join(dir, "file"), false},
	} {
		if tt.dir == filepath.Join(dir, "file") {
			os.WriteFile(tt.dir, nil, 0o644)
		}
		it := stateDirItem(tt.dir)
		if it.OK != tt.ok {
			t.Errorf("%s: ok=%v, want %v (%+v)", tt.dir, it.OK, tt.ok, it)
		}
		if tt.ok {
			left, _ := os.ReadDir(tt.dir)
			if len(left) != 0 {
				t.Errorf("%s: probe left %v behind", tt.dir, left)
			}
		}
	}
}

func TestMemlock(t *testing.T) {
	for _, tt := range []struct {
		release string
		charged bool
	}{
		{"5.10.0-28-amd64", false},
		{"5.11.0", true},
		{"6.1.0-rc1", true},
		{"4.19.0", false},
		{"garbage", false},
	} {
		if got := charged(tt.release); got != tt.charged {
			t.Errorf("charged(%q) = %v, want %v", tt.release, got, tt.charged)
		}
	}
}
