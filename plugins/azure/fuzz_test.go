package azure

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

// IMDS's answer is untrusted JSON: whatever it holds, Detect must not
// panic, a detection must carry a region and a VM id, and a refusal with
// IMDS's JSON error is "broken", never "not this cloud".
func FuzzDetect(f *testing.F) {
	f.Add(200, `{"compute": {"location": "westeurope", "vmId": "02aab8a4", "zone": "1", "vmSize": "Standard_D2s_v3"}}`)
	f.Add(200, `{"compute": {"location": " ", "vmId": "\n"}}`)
	f.Add(400, `{"error": "Bad request. api-version was not specified in the request."}`)
	f.Add(401, ``)
	f.Add(200, `{"compute": null}`)
	var mu sync.Mutex
	status, doc := 200, ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		w.Write([]byte(doc))
	}))
	defer srv.Close()
	os.Setenv(endpointEnv, srv.URL)
	defer os.Unsetenv(endpointEnv)
	p := &probe{md: metadata.New(nil)}
	f.Fuzz(func(t *testing.T, code int, body string) {
		if code < 200 || code > 599 {
			return
		}
		mu.Lock()
		status, doc = code, body
		mu.Unlock()
		attrs, err := p.Detect(context.Background())
		if code == 200 && errors.Is(err, sdk.ErrNotThisCloud) {
			t.Fatalf("a 200 from IMDS said not this cloud: %v", err)
		}
		if err != nil {
			return
		}
		for _, k := range []string{sdk.CloudRegion, sdk.HostID} {
			if strings.TrimSpace(attrs[k]) == "" {
				t.Fatalf("answer %q detected %v without %s", body, attrs, k)
			}
		}
	})
}
