package openshift

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// Point and attribute names: the OTel semantic conventions' node
// condition attributes on a catalogue instrument (metricdef).
const (
	metricCondition = "gopatrol.cloud.node.condition"
	attrCondType    = "k8s.node.condition.type"
	attrCondStatus  = "k8s.node.condition.status"
)

// Collect reports the node's conditions (Ready, MemoryPressure,
// DiskPressure, PIDPressure, NetworkUnavailable...) as the API server has
// them: one point of value 1 per condition, its status (true, false,
// unknown) as an attribute. Outside a pod, or without a node name, there
// is nothing to report. The service account needs get on nodes.
func (probe) Collect(ctx context.Context) ([]sdk.Point, error) {
	host, port := os.Getenv(hostEnv), os.Getenv(portEnv)
	name := envOr(nodeEnv, os.Getenv(k8sNodeEnv))
	if host == "" || port == "" || name == "" {
		return nil, nil
	}
	md, token, err := client()
	if err != nil {
		return nil, err
	}
	defer md.HTTP.CloseIdleConnections()
	hdr := http.Header{"Authorization": {"Bearer " + token}, "Accept": {"application/json"}}
	u := (&url.URL{Scheme: "https", Host: net.JoinHostPort(host, port)}).String() + "/api/v1/nodes/" + url.PathEscape(name)
	var n node
	ok, err := getJSON(ctx, md, u, hdr, &n)
	if err != nil {
		return nil, fmt.Errorf("node conditions: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("node conditions: node %q (%s or %s): no such node", name, nodeEnv, k8sNodeEnv)
	}
	now := time.Now().UnixNano()
	var pts []sdk.Point
	for _, c := range n.Status.Conditions {
		if c.Type == "" {
			continue
		}
		st := strings.ToLower(c.Status)
		if st != "true" && st != "false" {
			st = "unknown"
		}
		pts = append(pts, sdk.Point{Name: metricCondition, Value: 1, Unit: "1", TimeUnixNano: now,
			Attributes: map[string]string{attrCondType: c.Type, attrCondStatus: st, sdk.K8sNodeName: name}})
	}
	return pts, nil
}
