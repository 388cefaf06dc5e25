package openshift

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

const (
	// The standard in-cluster variables, set by the kubelet in every pod.
	hostEnv = "KUBERNETES_SERVICE_HOST"
	portEnv = "KUBERNETES_SERVICE_PORT"
	// Overrides of the service-account files (tests, out-of-pod runs).
	tokenEnv = "GOPATROL_K8S_TOKEN_FILE"
	caEnv    = "GOPATROL_K8S_CA_FILE"
	// The node the pod runs on, from the downward API (spec.nodeName):
	// NODE_NAME, or K8S_NODE_NAME as gopatrol's DaemonSet sets for otelcfg.
	nodeEnv    = "NODE_NAME"
	k8sNodeEnv = "K8S_NODE_NAME"

	defaultToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	defaultCA    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

	infraPath   = "/apis/config.openshift.io/v1/infrastructures/cluster"
	regionLabel = "topology.kubernetes.io/region"
	zoneLabel   = "topology.kubernetes.io/zone"
)

// platforms maps status.platformStatus.type to cloud.provider and the
// semconv *_openshift platform. Platforms without a semconv value
// (BareMetal, VSphere, OpenStack, None...) set neither.
var platforms = map[string][2]string{
	"AWS":          {sdk.ProviderAWS, sdk.PlatformAWSOpenShift},
	"Azure":        {sdk.ProviderAzure, sdk.PlatformAzureOpenShift},
	"GCP":          {sdk.ProviderGCP, sdk.PlatformGCPOpenShift},
	"IBMCloud":     {sdk.ProviderIBMCloud, sdk.PlatformIBMCloudOpenShift},
	"AlibabaCloud": {sdk.ProviderAlibaba, sdk.PlatformAlibabaOpenShift},
}

type probe struct{ version string }

func (p probe) Info() sdk.Info {
	return sdk.Info{Name: "openshift", Version: p.version,
		Description: "OpenShift platform and Kubernetes node topology through the in-cluster API",
		AttributeKeys: []string{sdk.CloudProvider, sdk.CloudPlatform, sdk.CloudRegion, sdk.CloudAvailabilityZone,
			sdk.K8sClusterName, sdk.K8sNodeName}}
}

type infrastructure struct {
	Status struct {
		InfrastructureName string `json:"infrastructureName"`
		PlatformStatus     struct {
			Type string `json:"type"`
			// Only these carry a region; Azure's cloudName
			// ("AzurePublicCloud") is a cloud, never a region.
			AWS          struct{ Region string } `json:"aws"`
			GCP          struct{ Region string } `json:"gcp"`
			AlibabaCloud struct{ Region string } `json:"alibabaCloud"`
		} `json:"platformStatus"`
	} `json:"status"`
}

type node struct {
	Metadata struct {
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Status struct {
		Conditions []struct{ Type, Status string } `json:"conditions"`
	} `json:"status"`
}

func (probe) Detect(ctx context.Context) (map[string]string, error) {
	host, port := os.Getenv(hostEnv), os.Getenv(portEnv)
	if host == "" || port == "" {
		return nil, sdk.NotThisCloudf("%s/%s not set: not in a Kubernetes pod", hostEnv, portEnv)
	}
	api := &url.URL{Scheme: "https", Host: net.JoinHostPort(host, port)}
	// A client per call: the projected token rotates, re-read it.
	md, token, err := client()
	if err != nil {
		return nil, err
	}
	defer md.HTTP.CloseIdleConnections()
	hdr := http.Header{"Authorization": {"Bearer " + token}, "Accept": {"application/json"}}
	attrs := map[string]string{}

	var infra infrastructure
	found, err := getJSON(ctx, md, api.String()+infraPath, hdr, &infra)
	if err != nil {
		return nil, err
	}
	if found {
		ps := infra.Status.PlatformStatus
		if p, ok := platforms[ps.Type]; ok {
			attrs[sdk.CloudProvider], attrs[sdk.CloudPlatform] = p[0], p[1]
		}
		for _, r := range []string{ps.AWS.Region, ps.GCP.Region, ps.AlibabaCloud.Region} {
			if r = strings.TrimSpace(r); r != "" {
				attrs[sdk.CloudRegion] = r
			}
		}
		if n := strings.TrimSpace(infra.Status.InfrastructureName); n != "" {
			attrs[sdk.K8sClusterName] = n
		}
	}

	if name := envOr(nodeEnv, os.Getenv(k8sNodeEnv)); name != "" {
		var n node
		ok, err := getJSON(ctx, md, api.String()+"/api/v1/nodes/"+url.PathEscape(name), hdr, &n)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("node %q (%s or %s): no such node", name, nodeEnv, k8sNodeEnv)
		}
		attrs[sdk.K8sNodeName] = name
		// The kubelet's labels come from the cloud provider: they win
		// over the cluster-wide region.
		if r := strings.TrimSpace(n.Metadata.Labels[regionLabel]); r != "" {
			attrs[sdk.CloudRegion] = r
		}
		if z := strings.TrimSpace(n.Metadata.Labels[zoneLabel]); z != "" {
			attrs[sdk.CloudAvailabilityZone] = z
		}
	}
	if len(attrs) == 0 {
		return nil, sdk.NotThisCloudf("Kubernetes without OpenShift infrastructure, and %s not set (downward API spec.nodeName)", nodeEnv)
	}
	return attrs, nil
}

// getJSON GETs url into v; false when the API answers 404 (not OpenShift,
// no such node).
func getJSON(ctx context.Context, md *metadata.Client, u string, hdr http.Header, v any) (bool, error) {
	r, err := md.Do(ctx, http.MethodGet, u, hdr)
	if err != nil {
		if errors.Is(err, sdk.ErrNotThisCloud) {
			// In a pod whose API server does not answer: broken, not
			// "another cloud".
			return false, fmt.Errorf("Kubernetes API unreachable: %w", errors.Unwrap(err))
		}
		return false, err
	}
	switch r.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		return false, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return false, fmt.Errorf("GET %s: %d %s: grant the service account get on it (see deploy/)", u, r.Status, http.StatusText(r.Status))
	default:
		return false, fmt.Errorf("GET %s: %d %s", u, r.Status, http.StatusText(r.Status))
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return false, fmt.Errorf("GET %s: not JSON: %w", u, err)
	}
	return true, nil
}

func client() (*metadata.Client, string, error) {
	tokenFile, caFile := envOr(tokenEnv, defaultToken), envOr(caEnv, defaultCA)
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, "", fmt.Errorf("service-account token: %w (set %s)", err, tokenEnv)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, "", fmt.Errorf("service-account CA: %w (set %s)", err, caEnv)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, "", fmt.Errorf("%s: no PEM certificate in it", caFile)
	}
	return metadata.New(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), strings.TrimSpace(string(tok)), nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// New returns the probe that gopatrol-probe-openshift serves; version is the
// one Info reports (the build's).
func New(version string) sdk.Probe { return probe{version: version} }
