package aws

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// The identity document is untrusted JSON: whatever it holds, Detect must
// not panic, and a detection must carry a region and an instance id.
func FuzzDetect(f *testing.F) {
	f.Add(200, `{"accountId": "1", "availabilityZone": "eu-west-1a", "instanceId": "i-1", "instanceType": "t3.micro", "region": "eu-west-1"}`)
	f.Add(200, `{"instanceId": " ", "region": "\t"}`)
	f.Add(200, `{"region": "eu-west-1", "instanceId": "i-1", "region": ""}`)
	f.Add(200, `[]`)
	f.Add(401, ``)
	f.Add(200, `{"region": "\ud800", "instanceId": "i"}`)
	var mu sync.Mutex
	status, doc := 200, ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == tokenPath {
			w.Write([]byte("token"))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		w.Write([]byte(doc))
	}))
	defer srv.Close()
	os.Setenv(endpointEnv, srv.URL)
	defer os.Unsetenv(endpointEnv)
	f.Fuzz(func(t *testing.T, code int, body string) {
		if code < 200 || code > 599 {
			return
		}
		mu.Lock()
		status, doc = code, body
		mu.Unlock()
		attrs, err := newProbe().Detect(context.Background())
		if err != nil {
			return
		}
		for _, k := range []string{sdk.CloudRegion, sdk.HostID} {
			if strings.TrimSpace(attrs[k]) == "" {
				t.Fatalf("document %q detected %v without %s", body, attrs, k)
			}
		}
	})
}
