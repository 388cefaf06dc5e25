package agent

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/gopatrol/gopatrol/otelcfg"
)

// EnvK8sPodUID is the Downward API variable of metadata.uid (the others
// are otelcfg's).
const EnvK8sPodUID = "K8S_POD_UID"

// Node labels that give the node's topology when no probe did.
const (
	LabelRegion = "topology.kubernetes.io/region"
	LabelZone   = "topology.kubernetes.io/zone"
)

// readK8s returns the resource detectors of the Downward API: the files
// named in the config (otelcfg's K8S_* variables, read first, win over
// them), the pod UID, and the node's topology labels as a last resort for
// cloud.region and cloud.availability_zone.
func readK8s(c K8sConfig, lookup func(string) (string, bool)) ([]otelcfg.Detector, error) {
	var first []attribute.KeyValue
	for _, f := range []struct {
		key  attribute.Key
		file string
		env  string
		name string
	}{
		{semconv.K8SNodeNameKey, c.NodeNameFile, "", "kubernetes.node_name_file"},
		{semconv.K8SPodNameKey, c.PodNameFile, "", "kubernetes.pod_name_file"},
		{semconv.K8SNamespaceNameKey, c.NamespaceFile, "", "kubernetes.namespace_file"},
		{semconv.K8SPodUIDKey, c.PodUIDFile, EnvK8sPodUID, "kubernetes.pod_uid_file"},
	} {
		v := ""
		if f.file != "" {
			b, err := os.ReadFile(f.file)
			if err != nil {
				return nil, &ConfigError{Key: f.name, Msg: err.Error()}
			}
			v = strings.TrimSpace(string(b))
		} else if f.env != "" {
			v, _ = lookup(f.env)
		}
		if v != "" {
			first = append(first, f.key.String(v))
		}
	}
	ds := []otelcfg.Detector{otelcfg.StaticDetector{Source: "Downward API", Attrs: first}}
	if c.NodeLabelsFile != "" {
		labels, err := readLabels(c.NodeLabelsFile)
		if err != nil {
			return nil, &ConfigError{Key: "kubernetes.node_labels_file", Msg: err.Error()}
		}
		var topo []attribute.KeyValue
		if v := labels[LabelRegion]; v != "" {
			topo = append(topo, semconv.CloudRegionKey.String(v))
		}
		if v := labels[LabelZone]; v != "" {
			topo = append(topo, semconv.CloudAvailabilityZoneKey.String(v))
		}
		ds = append(ds, otelcfg.StaticDetector{Source: "node labels", Attrs: topo})
	}
	return ds, nil
}

// readLabels parses a Downward API labels file: key="value" lines, the
// value quoted as Go quotes it.
func readLabels(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want key=\"value\"", path, i+1)
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		labels[k] = v
	}
	return labels, nil
}
