package gcp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

// The metadata server's answers are untrusted text: whatever they hold,
// Detect must not panic, and what it reports as detected must hold
// together (the region is the zone's prefix, the zone has no slash).
func FuzzDetect(f *testing.F) {
	f.Add("projects/1/zones/us-central1-a", "my-project", "42", "projects/1/machineTypes/e2-small", "")
	f.Add("projects/1/zones/europe-west4-b", "p", "7", "", "prod")
	f.Add("us-central1", "p", "7", "", "")
	f.Add("-a", "p", "7", "", "")
	f.Add("projects/1/zones/", "p", "7", "", "")
	f.Add("a/b-\xff", "p\x00", "7", "/", "c")
	var mu sync.Mutex
	answers := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Metadata-Flavor", "Google")
		mu.Lock()
		v, ok := answers[strings.TrimPrefix(r.URL.Path, prefix)]
		mu.Unlock()
		if !ok || v == "" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(v))
	}))
	defer srv.Close()
	os.Setenv(hostEnv, srv.Listener.Addr().String())
	defer os.Unsetenv(hostEnv)
	p := &probe{md: metadata.New(nil)}
	f.Fuzz(func(t *testing.T, zoneName, projectID, id, machine, cluster string) {
		mu.Lock()
		answers = map[string]string{zone.path: zoneName, project.path: projectID, instanceID.path: id,
			machineType.path: machine, clusterName.path: cluster}
		mu.Unlock()
		attrs, err := p.Detect(context.Background())
		if err != nil {
			return
		}
		z, region := attrs[sdk.CloudAvailabilityZone], attrs[sdk.CloudRegion]
		if region == "" || !strings.HasPrefix(z, region+"-") || strings.Contains(z, "/") {
			t.Fatalf("zone %q gave cloud.region %q, zone %q", zoneName, region, z)
		}
		if attrs[sdk.CloudProvider] != sdk.ProviderGCP || attrs[sdk.HostID] == "" {
			t.Fatalf("detected %v without provider or host.id", attrs)
		}
	})
}
