package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/internal/testgate"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
)

// envAgentNetns, set, says this test binary runs inside its own network
// namespace and holds the directory of the built vendor probes.
const envAgentNetns = "GOPATROL_TEST_AGENT_NETNS"

// envAgentBinary passes the built gopatrol to the re-executed test binary
// (TestMain builds it otherwise).
const envAgentBinary = "GOPATROL_TEST_AGENT_BINARY"

// The five vendor probes, as shipped, give the agent's resource its
// cloud.*: the agent runs --once in a private network namespace (nothing
// can reach a real metadata address) beside a loopback server that
// answers as the GCE metadata server does; the GCP probe detects it, the
// four others find no cloud, and the export carries the GCP identity.
func TestVendorProbesCloudOnResource(t *testing.T) {
	if os.Getenv(envAgentNetns) == "" {
		inNetns(t, "TestVendorProbesCloudOnResource", buildVendorProbes(t))
		return
	}
	dir := os.Getenv(envAgentNetns)
	gce := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Metadata-Flavor", "Google")
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "Missing required header: Metadata-Flavor", http.StatusForbidden)
			return
		}
		v, ok := map[string]string{
			"project/project-id":    "patrol-project",
			"instance/zone":         "projects/42/zones/europe-west4-b",
			"instance/id":           "4520031799277581759",
			"instance/machine-type": "projects/42/machineTypes/e2-standard-4",
		}[strings.TrimPrefix(r.URL.Path, "/computeMetadata/v1/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, v)
	}))
	defer gce.Close()
	r := otlptest.Start(t, otlptest.Options{})
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(cfg, []byte(quietConfig+"plugins:\n  dir: "+dir+"\nstate_dir: "+filepath.Join(filepath.Dir(cfg), "state")+"\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "agent", "--once", "--config", cfg)
	cmd.Env = append(os.Environ(), append(otlpEnv(r, time.Hour), "GCE_METADATA_HOST="+strings.TrimPrefix(gce.URL, "http://"),
		"KUBERNETES_SERVICE_HOST=", "KUBERNETES_SERVICE_PORT=")...)
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code > 1 {
		t.Fatalf("agent --once exit %d\n%s", code, out)
	}
	reqs := r.Wait(t, 1, 10*time.Second)
	res, _ := otlptest.Resource(reqs)
	for k, want := range map[string]string{
		"cloud.provider": "gcp", "cloud.platform": "gcp_compute_engine", "cloud.account.id": "patrol-project",
		"cloud.region": "europe-west4", "cloud.availability_zone": "europe-west4-b", "host.type": "e2-standard-4",
	} {
		if res[k] != want {
			t.Errorf("resource %s = %q, want %q\n%s", k, res[k], want, out)
		}
	}
	for name := range vendorProbes {
		if v, _ := latest(reqs, "gopatrol.probe.up", map[string]string{"gopatrol.probe.plugin": name}); v != 1 {
			t.Errorf("gopatrol.probe.up{%s} = %v, want 1: the probe answered (detected or not)\n%s", name, v, out)
		}
	}
}

// inNetns runs the test named test again in this test binary, under
// `unshare -n` with lo up, with dir in envAgentNetns, and fails t with
// its output unless it passed.
func inNetns(t *testing.T, test, dir string) {
	t.Helper()
	testgate.Root(t, "make a private network namespace (unshare -n)")
	unshare := testgate.Tool(t, "unshare", "util-linux")
	testgate.Tool(t, "ip", "iproute2")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--net", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`,
		self, "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envAgentNetns+"="+dir, envAgentBinary+"="+binary)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("%s in a network namespace: %v\n%s", test, err, out)
	}
}
