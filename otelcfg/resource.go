package otelcfg

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// SchemaURL is the one semantic-conventions version gopatrol speaks.
const SchemaURL = semconv.SchemaURL

// Downward API variables the DaemonSet sets (deploy/ and docs/otel.md):
// fieldRef spec.nodeName, metadata.name and metadata.namespace.
const (
	EnvK8sNodeName      = "K8S_NODE_NAME"
	EnvK8sPodName       = "K8S_POD_NAME"
	EnvK8sNamespaceName = "K8S_NAMESPACE_NAME"
)

// Detector contributes resource attributes, typically cloud.* from a probe
// plugin. A detector that finds nothing returns no attributes and no error.
type Detector interface {
	Name() string
	Detect(ctx context.Context) ([]attribute.KeyValue, error)
}

// StaticDetector is a Detector of fixed attributes, e.g. from the agent's
// config file.
type StaticDetector struct {
	Source string
	Attrs  []attribute.KeyValue
}

func (d StaticDetector) Name() string { return d.Source }
func (d StaticDetector) Detect(context.Context) ([]attribute.KeyValue, error) {
	return d.Attrs, nil
}

// ResourceConfig is what NewResource needs beyond the environment.
type ResourceConfig struct {
	// Root is the target machine's filesystem root: "/" for the doctor,
	// "/host" for the DaemonSet, so host.id is the node's machine-id.
	Root           string
	ServiceVersion string
	// ClusterName is k8s.cluster.name; Kubernetes has no API for it, so it
	// comes from config.
	ClusterName string
	// Detectors in precedence order: the first to set a key wins.
	Detectors []Detector
	// Lookup is os.LookupEnv unless a test says otherwise.
	Lookup func(string) (string, bool)
	// Hostname is os.Hostname unless a test says otherwise.
	Hostname func() (string, error)
	Logger   *slog.Logger
}

// instanceNamespace is the UUID namespace the semantic conventions
// recommend for service.instance.id version 5 UUIDs.
var instanceNamespace = uuid.MustParse("4d63009a-8d0f-11ee-aad7-4c796ed8e320")

// NewResource builds the resource every metric carries. Sources, first
// writer wins (a later source's different value is logged and dropped):
//
//  1. OTEL_SERVICE_NAME
//  2. OTEL_RESOURCE_ATTRIBUTES
//  3. config: k8s.cluster.name
//  4. Downward API: k8s.node.name, k8s.pod.name, k8s.namespace.name
//  5. gopatrol itself: service.*, host.*, os.type
//  6. the detectors, in order
//
// service.instance.id, unless set above, is a version 5 UUID of host.id (or
// host.name) and the pod: stable across restarts on one host, so that
// repeated `gopatrol check --export` runs update one series.
func NewResource(ctx context.Context, cfg ResourceConfig) (*resource.Resource, error) {
	lookup := cfg.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	hostname := cfg.Hostname
	if hostname == nil {
		hostname = os.Hostname
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	root := cfg.Root
	if root == "" {
		root = "/"
	}
	e := env{lookup}
	m := merger{log: log}

	if v := e.get("OTEL_SERVICE_NAME"); v != "" {
		m.add("OTEL_SERVICE_NAME", semconv.ServiceName(v))
	}
	if v := e.get("OTEL_RESOURCE_ATTRIBUTES"); v != "" {
		kvs, err := parseKeyValues("OTEL_RESOURCE_ATTRIBUTES", v)
		if err != nil {
			return nil, err
		}
		for _, kv := range kvs {
			m.add("OTEL_RESOURCE_ATTRIBUTES", attribute.String(kv[0], kv[1]))
		}
	}
	if cfg.ClusterName != "" {
		m.add("config", semconv.K8SClusterName(cfg.ClusterName))
	}
	for _, d := range []struct {
		env string
		kv  func(string) attribute.KeyValue
	}{
		{EnvK8sNodeName, semconv.K8SNodeName},
		{EnvK8sPodName, semconv.K8SPodName},
		{EnvK8sNamespaceName, semconv.K8SNamespaceName},
	} {
		if v := e.get(d.env); v != "" {
			m.add(d.env, d.kv(v))
		}
	}

	m.add("gopatrol", semconv.ServiceName("gopatrol"))
	if cfg.ServiceVersion != "" {
		m.add("gopatrol", semconv.ServiceVersion(cfg.ServiceVersion))
	}
	if id := machineID(root); id != "" {
		m.add("machine-id", semconv.HostID(id))
	} else {
		log.Debug("no machine-id: host.id not set", "root", root)
	}
	if name := hostName(root, hostname); name != "" {
		m.add("hostname", semconv.HostName(name))
	}
	if arch, ok := hostArch(runtime.GOARCH); ok {
		m.add("gopatrol", arch)
	}
	if runtime.GOOS == "linux" {
		m.add("gopatrol", semconv.OSTypeLinux)
	} else {
		m.add("gopatrol", semconv.OSTypeKey.String(runtime.GOOS))
	}

	for _, d := range cfg.Detectors {
		kvs, err := d.Detect(ctx)
		if err != nil {
			// A probe that cannot tell is not a reason to export nothing.
			log.Warn("resource detector failed", "detector", d.Name(), "err", err)
			continue
		}
		for _, kv := range kvs {
			m.add("detector "+d.Name(), kv)
		}
	}

	if _, ok := m.value(semconv.ServiceInstanceIDKey); !ok {
		host, _ := m.value(semconv.HostIDKey)
		if host == "" {
			host, _ = m.value(semconv.HostNameKey)
		}
		ns, _ := m.value(semconv.K8SNamespaceNameKey)
		pod, _ := m.value(semconv.K8SPodNameKey)
		name := strings.Join([]string{"gopatrol", host, ns, pod}, "\x00")
		m.add("gopatrol", semconv.ServiceInstanceID(uuid.NewSHA1(instanceNamespace, []byte(name)).String()))
	}
	return resource.NewWithAttributes(SchemaURL, m.attrs...), nil
}

// merger keeps the first value of each key and logs conflicts.
type merger struct {
	log    *slog.Logger
	attrs  []attribute.KeyValue
	source map[attribute.Key]string
}

func (m *merger) add(source string, kv attribute.KeyValue) {
	if m.source == nil {
		m.source = map[attribute.Key]string{}
	}
	if !kv.Valid() {
		m.log.Warn("invalid resource attribute dropped", "source", source, "key", string(kv.Key))
		return
	}
	if first, ok := m.source[kv.Key]; ok {
		for _, have := range m.attrs {
			if have.Key == kv.Key && have.Value != kv.Value {
				// Overriding gopatrol's own defaults is what the
				// variables are for: not worth a line at the default level.
				level := slog.LevelInfo
				if source == "gopatrol" || source == "hostname" || source == "machine-id" {
					level = slog.LevelDebug
				}
				m.log.Log(context.Background(), level, "resource attribute conflict: first writer wins",
					"key", string(kv.Key), "kept", have.Value.Emit(), "kept_from", first,
					"dropped", kv.Value.Emit(), "dropped_from", source)
			}
		}
		return
	}
	m.source[kv.Key] = source
	m.attrs = append(m.attrs, kv)
}

func (m *merger) value(k attribute.Key) (string, bool) {
	for _, kv := range m.attrs {
		if kv.Key == k {
			return kv.Value.Emit(), true
		}
	}
	return "", false
}

// machineID reads the machine-id under root: systemd's, then D-Bus's.
func machineID(root string) string {
	for _, p := range []string{"etc/machine-id", "var/lib/dbus/machine-id"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			continue
		}
		if id := strings.TrimSpace(string(b)); id != "" && id != "uninitialized" {
			return id
		}
	}
	return ""
}

// hostName is the target's: under another root (the DaemonSet's /host) the
// process's own hostname is the pod's, so the node's /etc/hostname wins.
func hostName(root string, hostname func() (string, error)) string {
	if filepath.Clean(root) != "/" {
		if b, err := os.ReadFile(filepath.Join(root, "etc/hostname")); err == nil {
			if name := strings.TrimSpace(string(b)); name != "" {
				return name
			}
		}
	}
	name, err := hostname()
	if err != nil {
		return ""
	}
	return name
}

// hostArch maps GOARCH to the semantic conventions' host.arch values.
func hostArch(goarch string) (attribute.KeyValue, bool) {
	switch goarch {
	case "amd64":
		return semconv.HostArchAMD64, true
	case "arm64":
		return semconv.HostArchARM64, true
	case "arm":
		return semconv.HostArchARM32, true
	case "386":
		return semconv.HostArchX86, true
	case "ppc64", "ppc64le":
		return semconv.HostArchPPC64, true
	case "s390x":
		return semconv.HostArchS390x, true
	}
	return attribute.KeyValue{}, false
}
