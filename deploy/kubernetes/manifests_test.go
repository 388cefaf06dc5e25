package kubernetes

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/gopatrol/gopatrol/agent"
	"github.com/gopatrol/gopatrol/agent/preflight"
	"github.com/gopatrol/gopatrol/otelcfg"
)

// scc is the part of OpenShift's SecurityContextConstraints the overlay
// uses, spelled as security.openshift.io/v1 does; decoding is strict, so a
// field outside this list fails (the OpenShift API module is not pulled in
// for one type).
type scc struct {
	APIVersion                      string            `json:"apiVersion"`
	Kind                            string            `json:"kind"`
	Metadata                        map[string]any    `json:"metadata"`
	Priority                        *int              `json:"priority"`
	AllowPrivilegedContainer        bool              `json:"allowPrivilegedContainer"`
	AllowPrivilegeEscalation        *bool             `json:"allowPrivilegeEscalation"`
	DefaultAllowPrivilegeEscalation *bool             `json:"defaultAllowPrivilegeEscalation"`
	AllowHostPID                    bool              `json:"allowHostPID"`
	AllowHostIPC                    bool              `json:"allowHostIPC"`
	AllowHostNetwork                bool              `json:"allowHostNetwork"`
	AllowHostPorts                  bool              `json:"allowHostPorts"`
	AllowHostDirVolumePlugin        bool              `json:"allowHostDirVolumePlugin"`
	ReadOnlyRootFilesystem          bool              `json:"readOnlyRootFilesystem"`
	AllowedCapabilities             []string          `json:"allowedCapabilities"`
	DefaultAddCapabilities          []string          `json:"defaultAddCapabilities"`
	RequiredDropCapabilities        []string          `json:"requiredDropCapabilities"`
	RunAsUser                       map[string]any    `json:"runAsUser"`
	SELinuxContext                  map[string]any    `json:"seLinuxContext"`
	FSGroup                         map[string]string `json:"fsGroup"`
	SupplementalGroups              map[string]string `json:"supplementalGroups"`
	SeccompProfiles                 []string          `json:"seccompProfiles"`
	Volumes                         []string          `json:"volumes"`
	Users                           []string          `json:"users"`
	Groups                          []string          `json:"groups"`
}

// objects is one overlay's output, decoded.
type objects struct {
	ds        *appsv1.DaemonSet
	configs   []*corev1.ConfigMap
	roles     []*rbacv1.ClusterRole
	nsRoles   []*rbacv1.Role
	bindings  []*rbacv1.ClusterRoleBinding
	nsBinds   []*rbacv1.RoleBinding
	sa        *corev1.ServiceAccount
	ns        *corev1.Namespace
	sccs      []*scc
	services  []*corev1.Service
	monitors  []*monv1.ServiceMonitor
	resources int
}

func build(t *testing.T, overlay string) objects {
	t.Helper()
	return buildDir(t, filepath.Join("overlays", overlay))
}

// buildDir builds the kustomization in dir and decodes every object
// strictly.
func buildDir(t *testing.T, dir string) objects {
	t.Helper()
	overlay := strings.TrimPrefix(dir, "overlays/")
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build overlays/%s: %v", overlay, err)
	}
	var o objects
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var into any
		switch r.GetKind() {
		case "DaemonSet":
			o.ds = &appsv1.DaemonSet{}
			into = o.ds
		case "ConfigMap":
			c := &corev1.ConfigMap{}
			o.configs = append(o.configs, c)
			into = c
		case "ClusterRole":
			c := &rbacv1.ClusterRole{}
			o.roles = append(o.roles, c)
			into = c
		case "Role":
			c := &rbacv1.Role{}
			o.nsRoles = append(o.nsRoles, c)
			into = c
		case "ClusterRoleBinding":
			c := &rbacv1.ClusterRoleBinding{}
			o.bindings = append(o.bindings, c)
			into = c
		case "RoleBinding":
			c := &rbacv1.RoleBinding{}
			o.nsBinds = append(o.nsBinds, c)
			into = c
		case "ServiceAccount":
			o.sa = &corev1.ServiceAccount{}
			into = o.sa
		case "Namespace":
			o.ns = &corev1.Namespace{}
			into = o.ns
		case "Service":
			c := &corev1.Service{}
			o.services = append(o.services, c)
			into = c
		case "ServiceMonitor":
			c := &monv1.ServiceMonitor{}
			o.monitors = append(o.monitors, c)
			into = c
		case "SecurityContextConstraints":
			c := &scc{}
			o.sccs = append(o.sccs, c)
			into = c
		default:
			t.Fatalf("overlays/%s: unexpected %s %s: the test must check every object", overlay, r.GetKind(), r.GetName())
		}
		if err := yaml.UnmarshalStrict(b, into); err != nil {
			t.Fatalf("overlays/%s: %s %s does not decode strictly: %v\n%s", overlay, r.GetKind(), r.GetName(), err, b)
		}
		o.resources++
	}
	if o.ds == nil || o.sa == nil || o.ns == nil {
		t.Fatalf("overlays/%s: no DaemonSet, ServiceAccount or Namespace", overlay)
	}
	return o
}

var overlays = []string{"eks", "ack", "openshift"}

// agentConfig writes the agent config of the ConfigMap the DaemonSet
// mounts to a file and loads it as the agent would.
func agentConfig(t *testing.T, o objects) (agent.Config, string) {
	t.Helper()
	vol := volume(t, o.ds, "config")
	if vol.ConfigMap == nil {
		t.Fatal("volume config is not a ConfigMap")
	}
	for _, c := range o.configs {
		if c.Name != vol.ConfigMap.Name {
			continue
		}
		data, ok := c.Data["agent.yaml"]
		if !ok {
			t.Fatalf("ConfigMap %s has no agent.yaml", c.Name)
		}
		p := filepath.Join(t.TempDir(), "agent.yaml")
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := agent.Load(p, nil)
		if err != nil {
			t.Fatalf("the ConfigMap's agent.yaml does not pass agent.Load: %v", err)
		}
		return cfg, data
	}
	t.Fatalf("no ConfigMap %s (names: %v)", vol.ConfigMap.Name, o.configs)
	return agent.Config{}, ""
}

func volume(t *testing.T, ds *appsv1.DaemonSet, name string) corev1.Volume {
	t.Helper()
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("DaemonSet has no volume %s", name)
	return corev1.Volume{}
}

func mount(t *testing.T, c corev1.Container, name string) corev1.VolumeMount {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("container %s does not mount %s", c.Name, name)
	return corev1.VolumeMount{}
}

func TestOverlaysSecurityPosture(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			o := build(t, overlay)
			cfg, _ := agentConfig(t, o)
			pod := o.ds.Spec.Template.Spec
			if !pod.HostPID || pod.HostNetwork || pod.HostIPC {
				t.Errorf("hostPID=%v hostNetwork=%v hostIPC=%v; want only hostPID", pod.HostPID, pod.HostNetwork, pod.HostIPC)
			}
			if sp := pod.SecurityContext.SeccompProfile; sp == nil || sp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod seccomp profile %+v, want RuntimeDefault", sp)
			}
			// Exactly what preflight says this config needs.
			want := preflight.NeededCaps(preflightOptions(cfg))
			for i := range want {
				want[i] = strings.TrimPrefix(want[i], "CAP_")
			}
			slices.Sort(want)
			containers := append(slices.Clone(pod.InitContainers), pod.Containers...)
			if len(containers) != 2 {
				t.Fatalf("%d containers, want the preflight init container and the agent", len(containers))
			}
			for _, c := range containers {
				sc := c.SecurityContext
				if sc == nil {
					t.Fatalf("%s: no securityContext", c.Name)
				}
				if sc.Privileged == nil || *sc.Privileged {
					t.Errorf("%s: privileged must be false", c.Name)
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s: allowPrivilegeEscalation must be false", c.Name)
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s: readOnlyRootFilesystem must be true", c.Name)
				}
				var add []string
				for _, c := range sc.Capabilities.Add {
					add = append(add, string(c))
				}
				slices.Sort(add)
				if !slices.Equal(add, want) {
					t.Errorf("%s: capabilities add %v, want exactly %v (preflight.NeededCaps)", c.Name, add, want)
				}
				if len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
					t.Errorf("%s: capabilities drop %v, want [ALL]", c.Name, sc.Capabilities.Drop)
				}
				// The agent's paths are the mounts.
				if m := mount(t, c, "host-root"); m.MountPath != cfg.HostRoot || !m.ReadOnly {
					t.Errorf("%s: host root mounted at %s (readOnly %v), config host_root %s: want the same path, read-only", c.Name, m.MountPath, m.ReadOnly, cfg.HostRoot)
				}
				if m := mount(t, c, "state"); m.MountPath != cfg.StateDir || m.ReadOnly {
					t.Errorf("%s: state mounted at %s (readOnly %v), config state_dir %s: want the same path, writable", c.Name, m.MountPath, m.ReadOnly, cfg.StateDir)
				}
				m := mount(t, c, "config")
				if i := slices.Index(c.Args, "--config"); i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != filepath.Join(m.MountPath, "agent.yaml") {
					t.Errorf("%s: args %v do not name the mounted config %s/agent.yaml", c.Name, c.Args, m.MountPath)
				}
				for _, m := range c.VolumeMounts {
					if v := volume(t, o.ds, m.Name); v.HostPath != nil && !m.ReadOnly && m.Name != "state" {
						t.Errorf("%s: host path %s mounted writable at %s; only the state dir may be", c.Name, v.HostPath.Path, m.MountPath)
					}
				}
			}
			if c := pod.InitContainers[0]; len(c.Args) == 0 || c.Args[0] != "preflight" || c.Image != pod.Containers[0].Image {
				t.Errorf("init container %s: args %v image %s; want preflight with the agent's image", c.Name, c.Args, c.Image)
			}
			// Host paths: the node's root, BTF, tracefs, the state dir; nothing else.
			var hostPaths []string
			for _, v := range pod.Volumes {
				if v.HostPath != nil {
					hostPaths = append(hostPaths, v.HostPath.Path)
				}
			}
			slices.Sort(hostPaths)
			tracefs := "/sys/kernel/tracing"
			if overlay == "ack" {
				tracefs = "/sys/kernel/debug/tracing"
			}
			wantPaths := []string{"/", "/sys/kernel/btf", tracefs, "/var/lib/gopatrol"}
			slices.Sort(wantPaths)
			if !slices.Equal(hostPaths, wantPaths) {
				t.Errorf("host paths %v, want %v", hostPaths, wantPaths)
			}
			if pod.PriorityClassName != "system-node-critical" {
				t.Errorf("priorityClassName %q", pod.PriorityClassName)
			}
			if !slices.ContainsFunc(pod.Tolerations, func(tl corev1.Toleration) bool {
				return tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == ""
			}) {
				t.Errorf("tolerations %+v do not tolerate every taint", pod.Tolerations)
			}
			ru := o.ds.Spec.UpdateStrategy.RollingUpdate
			if o.ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "10%" {
				t.Errorf("update strategy %+v, want RollingUpdate with maxUnavailable 10%%", o.ds.Spec.UpdateStrategy)
			}
			if g := pod.TerminationGracePeriodSeconds; g == nil || float64(*g) <= cfg.ShutdownTimeout.Seconds() {
				t.Errorf("terminationGracePeriodSeconds %v must exceed shutdown_timeout %v", g, cfg.ShutdownTimeout)
			}
		})
	}
}

func preflightOptions(cfg agent.Config) preflight.Options {
	return preflight.Options{
		HostRoot: cfg.HostRoot, StateDir: cfg.StateDir,
		Sensors: cfg.Sensors.Enabled, TLS: cfg.Sensors.TLS, RequireSensors: cfg.Sensors.Require,
		AsUser: cfg.Checks.AsUser, RingSize: cfg.Sensors.RingSize,
	}
}

func TestOverlaysProbesMatchConfig(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			o := build(t, overlay)
			cfg, _ := agentConfig(t, o)
			host, port, _ := strings.Cut(cfg.Listen, ":")
			if host != "0.0.0.0" && host != "" {
				t.Errorf("listen %s: the kubelet probes the pod IP, want 0.0.0.0:<port>", cfg.Listen)
			}
			c := o.ds.Spec.Template.Spec.Containers[0]
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			for _, p := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{
				{"startup", c.StartupProbe, "/healthz"},
				{"liveness", c.LivenessProbe, "/healthz"},
				{"readiness", c.ReadinessProbe, "/readyz"},
			} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("%s probe: none, want GET %s", p.name, p.path)
					continue
				}
				g := p.probe.HTTPGet
				n := g.Port.IntVal
				if g.Port.StrVal != "" {
					n = ports[g.Port.StrVal]
				}
				if g.Path != p.path || port == "" || port != itoa(n) {
					t.Errorf("%s probe GET %s port %s (=%d), want %s on the config's listen port %s", p.name, g.Path, g.Port.String(), n, p.path, port)
				}
			}
			// Requests cover the measured footprint (docs/agent.md: 40 MiB
			// resident, issue 11's budget 48 MiB); the limit leaves room
			// for the checks' commands.
			res := c.Resources
			if r := res.Requests.Memory().Value(); r < 48<<20 {
				t.Errorf("memory request %d below the agent's 48 MiB budget", r)
			}
			if l := res.Limits.Memory().Value(); l < 256<<20 {
				t.Errorf("memory limit %d leaves no room for go run in the checks", l)
			}
			if res.Requests.Cpu().IsZero() || res.Limits.Cpu().IsZero() {
				t.Errorf("cpu request/limit %v/%v must be set", res.Requests.Cpu(), res.Limits.Cpu())
			}
		})
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func TestOverlaysDownwardAPI(t *testing.T) {
	// The variables the agent reads for the k8s.* resource attributes.
	want := map[string]string{
		otelcfg.EnvK8sNodeName:      "spec.nodeName",
		otelcfg.EnvK8sPodName:       "metadata.name",
		otelcfg.EnvK8sNamespaceName: "metadata.namespace",
		agent.EnvK8sPodUID:          "metadata.uid",
	}
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			o := build(t, overlay)
			got := map[string]string{}
			for _, e := range o.ds.Spec.Template.Spec.Containers[0].Env {
				if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && strings.HasPrefix(e.Name, "K8S_") {
					got[e.Name] = e.ValueFrom.FieldRef.FieldPath
				}
			}
			if len(got) != len(want) {
				t.Errorf("Downward API K8S_* variables %v, want %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s from %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestOverlaysRBAC(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			o := build(t, overlay)
			if len(o.roles) != 1 || len(o.bindings) != 1 {
				t.Fatalf("%d ClusterRoles, %d bindings; want one of each", len(o.roles), len(o.bindings))
			}
			rules := o.roles[0].Rules
			if len(rules) != 1 || !slices.Equal(rules[0].Resources, []string{"nodes"}) || !slices.Equal(rules[0].Verbs, []string{"get"}) || !slices.Equal(rules[0].APIGroups, []string{""}) {
				t.Errorf("cluster rules %+v, want only get on nodes", rules)
			}
			sa := o.sa.Name
			if o.ds.Spec.Template.Spec.ServiceAccountName != sa {
				t.Errorf("DaemonSet runs as %q, want the ServiceAccount %q", o.ds.Spec.Template.Spec.ServiceAccountName, sa)
			}
			for _, b := range o.bindings {
				if len(b.Subjects) != 1 || b.Subjects[0].Name != sa || b.Subjects[0].Namespace != o.ns.Name {
					t.Errorf("binding %s subjects %+v, want only %s/%s", b.Name, b.Subjects, o.ns.Name, sa)
				}
			}
			if o.ds.Namespace != o.ns.Name || o.sa.Namespace != o.ns.Name {
				t.Errorf("DaemonSet in %q, ServiceAccount in %q, want %q", o.ds.Namespace, o.sa.Namespace, o.ns.Name)
			}
		})
	}
}

func TestOpenShiftSCC(t *testing.T) {
	o := build(t, "openshift")
	if len(o.sccs) != 1 {
		t.Fatalf("%d SecurityContextConstraints, want 1", len(o.sccs))
	}
	s := o.sccs[0]
	cfg, _ := agentConfig(t, o)
	want := preflight.NeededCaps(preflightOptions(cfg))
	for i := range want {
		want[i] = strings.TrimPrefix(want[i], "CAP_")
	}
	got := slices.Clone(s.AllowedCapabilities)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("SCC allowedCapabilities %v, want exactly %v", got, want)
	}
	if s.AllowPrivilegedContainer || s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation || !s.AllowHostPID ||
		s.AllowHostNetwork || s.AllowHostIPC || s.AllowHostPorts || !s.ReadOnlyRootFilesystem || !s.AllowHostDirVolumePlugin {
		t.Errorf("SCC grants more or less than the pod asks: %+v", s)
	}
	if !slices.Equal(s.SeccompProfiles, []string{"runtime/default"}) {
		t.Errorf("SCC seccompProfiles %v", s.SeccompProfiles)
	}
	// The pod's SELinux type is the one the SCC forces.
	sel, _ := s.SELinuxContext["seLinuxOptions"].(map[string]any)
	pod := o.ds.Spec.Template.Spec.SecurityContext
	if pod.SELinuxOptions == nil || sel == nil || pod.SELinuxOptions.Type != sel["type"] {
		t.Errorf("pod seLinuxOptions %+v, SCC %v: want the same type", pod.SELinuxOptions, sel)
	}
	// Only the gopatrol ServiceAccount may use it.
	if len(o.nsRoles) != 1 || len(o.nsBinds) != 1 {
		t.Fatalf("%d Roles, %d RoleBindings, want one of each", len(o.nsRoles), len(o.nsBinds))
	}
	r := o.nsRoles[0].Rules
	if len(r) != 1 || !slices.Equal(r[0].Verbs, []string{"use"}) || !slices.Equal(r[0].ResourceNames, []string{s.Metadata["name"].(string)}) {
		t.Errorf("SCC role %+v, want use of %v only", r, s.Metadata["name"])
	}
	if b := o.nsBinds[0]; len(b.Subjects) != 1 || b.Subjects[0].Name != o.sa.Name {
		t.Errorf("SCC binding subjects %+v", b.Subjects)
	}
	// Without a namespace, kubectl would create them in whatever
	// namespace the user's context names, where they grant nothing.
	if o.nsRoles[0].Namespace != o.ns.Name || o.nsBinds[0].Namespace != o.ns.Name {
		t.Errorf("SCC Role in %q, RoleBinding in %q, want %q", o.nsRoles[0].Namespace, o.nsBinds[0].Namespace, o.ns.Name)
	}
}
