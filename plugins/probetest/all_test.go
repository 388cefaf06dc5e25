package probetest_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/probetest"
	"github.com/gopatrol/gopatrol/plugins/sdk"
)

var all = []string{"aws", "alibaba", "gcp", "azure", "openshift"}

// Off every cloud each probe says "not this cloud", not "error". The
// timing is measured by BenchmarkDetectOffCloud.
func TestAllOffCloud(t *testing.T) {
	t.Run("refused", func(t *testing.T) { allOffCloud(t, nil) })
	t.Run("silent", func(t *testing.T) {
		if !probetest.HaveSilent() {
			probetest.Skip(t, "no silent address (needs root, the network namespace and tun)")
		}
		allOffCloud(t, silentEnv())
	})
}

// silentEnv points the metadata probes at an address that drops SYNs.
func silentEnv() []string {
	u := "http://" + probetest.SilentAddr
	return []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + u, "GOPATROL_ALIBABA_METADATA_ENDPOINT=" + u,
		"GCE_METADATA_HOST=" + probetest.SilentAddr, "GOPATROL_AZURE_IMDS_ENDPOINT=" + u}
}

func allOffCloud(t *testing.T, env []string) {
	h := openHost(t, all, env)
	r := h.Detect(context.Background())
	if len(r.Results) != 5 {
		t.Fatalf("%d results, want 5", len(r.Results))
	}
	for _, res := range r.Results {
		if res.Status != sdk.NotThisCloud {
			t.Errorf("%s: %s (%s), want not_this_cloud", res.Plugin, res.Status, res.Reason)
		}
	}
	if len(r.Attributes) != 0 {
		t.Errorf("attributes %v off-cloud, want none", r.Attributes)
	}
}

// OpenShift on EC2, seen by all five probes: the merge keeps the
// OpenShift platform and EC2's identity, and the other probes stay out.
func TestAllOnOpenShiftOnAWS(t *testing.T) {
	h := openHost(t, all, onCloudEnv(t))
	r := h.Detect(context.Background())
	want := map[string]string{
		"cloud.provider": "aws", "cloud.platform": "aws_openshift", "cloud.region": "eu-central-1",
		"cloud.availability_zone": "eu-central-1b", "cloud.account.id": "123456789012",
		"host.id": "i-0123456789abcdef0", "host.type": "m6i.large", "k8s.cluster.name": "prod-x7k2p", "k8s.node.name": "node-1",
	}
	if fmt.Sprint(r.Attributes) != fmt.Sprint(want) {
		t.Errorf("merged:\n got %v\nwant %v", r.Attributes, want)
	}
	if r.Sources["cloud.platform"] != "openshift" || r.Sources["host.id"] != "aws" {
		t.Errorf("sources %v", r.Sources)
	}
}

// onCloudEnv is an EC2 instance in an OpenShift cluster, on loopback.
func onCloudEnv(t testing.TB) []string {
	ec2 := httptest.NewServer(newAWS(awsDoc))
	t.Cleanup(ec2.Close)
	api := kubeAPI{token: "sa-token", nodes: map[string]map[string]string{"node-1": {
		"topology.kubernetes.io/region": "eu-central-1", "topology.kubernetes.io/zone": "eu-central-1b"}},
		infra: `{"status": {"infrastructureName": "prod-x7k2p", "platformStatus": {"type": "AWS", "aws": {"region": "eu-central-1"}}}}`}
	return append(kubeEnvTB(t, api, "sa-token"), awsEnv(ec2.URL)...)
}

// Proxy variables are never used for metadata: a server on a
// non-loopback address (Go's proxy logic skips loopback by itself) is
// reached directly while HTTP_PROXY points at a recording proxy.
func TestProxyNeverUsed(t *testing.T) {
	if os.Getenv("GOPATROL_TEST_NETNS") == "" {
		probetest.Skip(t, "needs the private network namespace (root) for its non-loopback address")
	}
	l, err := net.Listen("tcp", probetest.TestNetAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	md := &httptest.Server{Listener: l, Config: &http.Server{Handler: newAWS(awsDoc)}}
	md.Start()
	defer md.Close()
	var proxied atomic.Int32
	proxy := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		http.Error(w, "proxy says no", http.StatusBadGateway)
	}))
	env := append(awsEnv(md.URL), "HTTP_PROXY="+proxy.URL, "http_proxy="+proxy.URL, "ALL_PROXY="+proxy.URL)
	wantAttrs(t, detect(t, "aws", env), awsWant)
	if n := proxied.Load(); n != 0 {
		t.Errorf("%d metadata requests went through HTTP_PROXY, want 0", n)
	}
}
