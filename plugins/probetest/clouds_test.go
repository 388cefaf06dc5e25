package probetest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/plugins/probetest"
	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// As root the tests run in their own network namespace: only lo, and
// silent0, a tap device without carrier that can send nothing anywhere.
func TestRunsInPrivateNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		probetest.Skip(t, "not root: no private network namespace")
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name != "lo" && i.Name != "silent0" {
			t.Fatalf("interface %s in the test namespace: want only lo and the carrier-less silent0 (unshare -n)", i.Name)
		}
	}
}

// gceMetadata follows the GCE metadata server: it answers only requests
// with "Metadata-Flavor: Google" (403 otherwise) and marks every answer,
// errors included, with the same header.
type gceMetadata struct{ values map[string]string }

func (g gceMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Metadata-Flavor", "Google")
	if r.Header.Get("Metadata-Flavor") != "Google" {
		http.Error(w, "Missing required header: Metadata-Flavor", http.StatusForbidden)
		return
	}
	v, ok := g.values[strings.TrimPrefix(r.URL.Path, "/computeMetadata/v1/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	fmt.Fprint(w, v)
}

func newGCE() gceMetadata {
	return gceMetadata{values: map[string]string{
		"project/project-id":    "my-project",
		"instance/zone":         "projects/123456789/zones/europe-west4-b",
		"instance/id":           "4520031799277581759",
		"instance/machine-type": "projects/123456789/machineTypes/e2-standard-4",
	}}
}

func gcpEnv(url string) []string {
	return []string{"GCE_METADATA_HOST=" + strings.TrimPrefix(url, "http://")}
}

func TestGCP(t *testing.T) {
	want := map[string]string{
		"cloud.provider": "gcp", "cloud.platform": "gcp_compute_engine", "cloud.account.id": "my-project",
		"cloud.region": "europe-west4", "cloud.availability_zone": "europe-west4-b",
		"host.id": "4520031799277581759", "host.type": "e2-standard-4",
	}
	// cluster-name is 404 on a plain VM: optional, left out.
	vm := server(t, newGCE())
	wantAttrs(t, detect(t, "gcp", gcpEnv(vm.URL)), want)

	gke := newGCE()
	gke.values["instance/attributes/cluster-name"] = "prod-eu"
	want["cloud.platform"], want["k8s.cluster.name"] = "gcp_kubernetes_engine", "prod-eu"
	wantAttrs(t, detect(t, "gcp", gcpEnv(server(t, gke).URL)), want)
}

func TestGCPErrors(t *testing.T) {
	noZone := newGCE()
	delete(noZone.values, "instance/zone")
	big := newGCE()
	big.values["instance/id"] = strings.Repeat("1", 300<<10)
	tests := []struct {
		name    string
		handler http.Handler
		status  sdk.Status
		reason  string
	}{
		{"required field 404", noZone, sdk.Failed, "instance/zone: 404"},
		{"oversized value", big, sdk.Failed, "response body too large"},
		{"not Google's server", http.NotFoundHandler(), sdk.NotThisCloud, "without Metadata-Flavor: Google"},
		{"slower than the deadline", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Metadata-Flavor", "Google")
			slowHandler(10*time.Second)(w, r)
		}), sdk.Failed, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server(t, tt.handler)
			wantStatus(t, detect(t, "gcp", gcpEnv(srv.URL), callTimeout(500*time.Millisecond)), tt.status, tt.reason)
		})
	}
}

// azureIMDS follows Azure IMDS: "Metadata: true" and an api-version are
// required (400 with a JSON error otherwise).
type azureIMDS struct{ body string }

func (a azureIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	switch {
	case r.Header.Get("Metadata") != "true":
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error": "Bad request. Required metadata header not specified"}`)
	case r.URL.Query().Get("api-version") == "":
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error": "Bad request. api-version was not specified in the request."}`)
	case r.URL.Path != "/metadata/instance":
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error": "Not found"}`)
	default:
		fmt.Fprint(w, a.body)
	}
}

const azureInstance = `{"compute": {
  "location": "westeurope", "zone": "2", "name": "vm1",
  "subscriptionId": "8d10da13-8125-4ba9-a717-bf7490507b3d",
  "vmId": "02aab8a4-74ef-476e-8182-f6d2ba4166a6", "vmSize": "Standard_D2s_v5",
  "resourceId": "/subscriptions/8d10da13-8125-4ba9-a717-bf7490507b3d/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
}, "network": {"interface": []}}`

func azureEnv(url string) []string { return []string{"GOPATROL_AZURE_IMDS_ENDPOINT=" + url} }

func TestAzure(t *testing.T) {
	srv := server(t, azureIMDS{body: azureInstance})
	wantAttrs(t, detect(t, "azure", azureEnv(srv.URL)), map[string]string{
		"cloud.provider": "azure", "cloud.platform": "azure.vm",
		"cloud.region": "westeurope", "cloud.availability_zone": "2",
		"cloud.account.id":  "8d10da13-8125-4ba9-a717-bf7490507b3d",
		"cloud.resource_id": "/subscriptions/8d10da13-8125-4ba9-a717-bf7490507b3d/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
		"host.id":           "02aab8a4-74ef-476e-8182-f6d2ba4166a6", "host.type": "Standard_D2s_v5",
	})
}

func TestAzureErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.Handler
		status  sdk.Status
		reason  string
	}{
		{"IMDS error", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error": "Too many requests"}`)
		}), sdk.Failed, "429: Too many requests"},
		{"EC2 at the same address", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
		}), sdk.NotThisCloud, "without an IMDS error: not Azure"},
		{"oversized", azureIMDS{body: `{"compute": {"name": "` + strings.Repeat("n", 300<<10) + `"}}`}, sdk.Failed, "response body too large"},
		{"no vmId", azureIMDS{body: `{"compute": {"location": "westeurope"}}`}, sdk.Failed, "compute.vmId or compute.location missing"},
		{"slower than the deadline", slowHandler(10 * time.Second), sdk.Failed, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server(t, tt.handler)
			wantStatus(t, detect(t, "azure", azureEnv(srv.URL), callTimeout(500*time.Millisecond)), tt.status, tt.reason)
		})
	}
}

// kubeAPI is an in-cluster API server on TLS with its own CA, that wants
// the service-account bearer token.
type kubeAPI struct {
	token string
	infra string // infrastructures/cluster JSON; "" is 404 (not OpenShift)
	nodes map[string]map[string]string
	// conditions are every node's status.conditions.
	conditions []map[string]string
}

func (k kubeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+k.token {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"kind":"Status","status":"Failure","reason":"Unauthorized","code":401}`)
		return
	}
	switch {
	case r.URL.Path == "/apis/config.openshift.io/v1/infrastructures/cluster" && k.infra != "":
		fmt.Fprint(w, k.infra)
	case strings.HasPrefix(r.URL.Path, "/api/v1/nodes/"):
		labels, ok := k.nodes[strings.TrimPrefix(r.URL.Path, "/api/v1/nodes/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"kind": "Node", "metadata": map[string]any{"labels": labels},
			"status": map[string]any{"conditions": k.conditions}})
	default:
		http.NotFound(w, r)
	}
}

// kubeEnv starts api on TLS and returns the in-cluster variables for it.
func kubeEnv(t *testing.T, api http.Handler, token string) []string { return kubeEnvTB(t, api, token) }

func kubeEnvTB(t testing.TB, api http.Handler, token string) []string {
	srv := httptest.NewTLSServer(api)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if _, err := x509.ParseCertificate(srv.Certificate().Raw); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o644)
	os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "https://"))
	return []string{
		"KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port,
		"GOPATROL_K8S_TOKEN_FILE=" + filepath.Join(dir, "token"), "GOPATROL_K8S_CA_FILE=" + filepath.Join(dir, "ca.crt"),
		"NODE_NAME=node-1",
	}
}

var euLabels = map[string]map[string]string{"node-1": {
	"topology.kubernetes.io/region": "eu-west-1", "topology.kubernetes.io/zone": "eu-west-1a",
}}

func TestOpenShift(t *testing.T) {
	tests := []struct {
		name string
		api  kubeAPI
		want map[string]string
	}{
		{"OpenShift on AWS", kubeAPI{token: "sa-token", nodes: euLabels, infra: `{"status": {
			"infrastructureName": "prod-x7k2p", "platform": "AWS",
			"platformStatus": {"type": "AWS", "aws": {"region": "eu-west-1"}}}}`},
			map[string]string{"cloud.provider": "aws", "cloud.platform": "aws_openshift", "k8s.cluster.name": "prod-x7k2p",
				"cloud.region": "eu-west-1", "cloud.availability_zone": "eu-west-1a", "k8s.node.name": "node-1"}},
		// Azure's platformStatus names a cloud (AzurePublicCloud): never a region.
		{"OpenShift on Azure", kubeAPI{token: "sa-token", nodes: map[string]map[string]string{"node-1": {}}, infra: `{"status": {
			"infrastructureName": "az-9f8e7", "platformStatus": {"type": "Azure",
			"azure": {"cloudName": "AzurePublicCloud", "resourceGroupName": "az-9f8e7-rg"}}}}`},
			map[string]string{"cloud.provider": "azure", "cloud.platform": "azure.openshift", "k8s.cluster.name": "az-9f8e7",
				"k8s.node.name": "node-1"}},
		{"OpenShift on bare metal", kubeAPI{token: "sa-token", nodes: map[string]map[string]string{"node-1": {}}, infra: `{"status": {
			"infrastructureName": "lab-1", "platformStatus": {"type": "BareMetal"}}}`},
			map[string]string{"k8s.cluster.name": "lab-1", "k8s.node.name": "node-1"}},
		{"plain Kubernetes node", kubeAPI{token: "sa-token", nodes: euLabels},
			map[string]string{"cloud.region": "eu-west-1", "cloud.availability_zone": "eu-west-1a", "k8s.node.name": "node-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantAttrs(t, detect(t, "openshift", kubeEnv(t, tt.api, "sa-token")), tt.want)
		})
	}
}

// The DaemonSet's K8S_NODE_NAME (otelcfg's variable) works as NODE_NAME.
func TestKubernetesNodeFromK8sNodeName(t *testing.T) {
	env := append(kubeEnv(t, kubeAPI{token: "sa-token", nodes: euLabels}, "sa-token"), "NODE_NAME=", "K8S_NODE_NAME=node-1")
	wantAttrs(t, detect(t, "openshift", env),
		map[string]string{"cloud.region": "eu-west-1", "cloud.availability_zone": "eu-west-1a", "k8s.node.name": "node-1"})
}

func TestOpenShiftErrors(t *testing.T) {
	api := kubeAPI{token: "sa-token", nodes: euLabels}
	t.Run("not in a pod", func(t *testing.T) {
		wantStatus(t, detect(t, "openshift", nil), sdk.NotThisCloud, "KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT not set")
	})
	t.Run("wrong token", func(t *testing.T) {
		wantStatus(t, detect(t, "openshift", kubeEnv(t, api, "stale-token")), sdk.Failed, "401 Unauthorized")
	})
	t.Run("unknown node", func(t *testing.T) {
		env := append(kubeEnv(t, api, "sa-token"), "NODE_NAME=node-9")
		wantStatus(t, detect(t, "openshift", env), sdk.Failed, `node "node-9" (NODE_NAME or K8S_NODE_NAME): no such node`)
	})
	t.Run("API server signed by another CA", func(t *testing.T) {
		env := kubeEnv(t, api, "sa-token")
		other := filepath.Join(t.TempDir(), "other-ca.crt")
		os.WriteFile(other, otherCA(t), 0o644)
		env = append(env, "GOPATROL_K8S_CA_FILE="+other)
		wantStatus(t, detect(t, "openshift", env), sdk.Failed, "certificate signed by unknown authority")
	})
}

// otherCA is a fresh self-signed CA certificate in PEM.
func otherCA(t testing.TB) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
