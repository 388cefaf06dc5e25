package alibaba

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// The metadata service's answers are untrusted text: whatever they hold,
// Detect must not panic, and what it reports as detected must carry the
// required attributes.
func FuzzDetect(f *testing.F) {
	f.Add("tok", "cn-hangzhou", "cn-hangzhou-h", "i-bp1", "1234", "ecs.g7.large")
	f.Add("tok", " ", "cn-hangzhou-h", "i-bp1", "", "") // a blank region was once detected without cloud.region
	f.Add("", "cn-hangzhou", "z", "i", "", "")
	f.Add("tok", "cn-\xff", "z", "i\n", "a", "t")
	var mu sync.Mutex
	answers := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		v := answers[r.URL.Path]
		mu.Unlock()
		if v == "" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(v))
	}))
	defer srv.Close()
	os.Setenv(endpointEnv, srv.URL)
	defer os.Unsetenv(endpointEnv)
	f.Fuzz(func(t *testing.T, token, region, zone, id, account, typ string) {
		mu.Lock()
		answers = map[string]string{tokenPath: token}
		for it, v := range map[string]string{
			"/latest/meta-data/region-id": region, "/latest/meta-data/zone-id": zone, "/latest/meta-data/instance-id": id,
			"/latest/meta-data/owner-account-id": account, "/latest/meta-data/instance/instance-type": typ,
		} {
			answers[it] = v
		}
		mu.Unlock()
		attrs, err := newProbe().Detect(context.Background())
		if err != nil {
			return
		}
		for _, k := range []string{sdk.CloudProvider, sdk.CloudPlatform, sdk.CloudRegion, sdk.CloudAvailabilityZone, sdk.HostID} {
			if attrs[k] == "" {
				t.Fatalf("detected %v without %s", attrs, k)
			}
		}
	})
}
