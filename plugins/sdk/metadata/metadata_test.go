package metadata_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

func TestEndpoint(t *testing.T) {
	tests := []struct {
		env, def, want, err string
	}{
		{"", "http://169.254.169.254", "http://169.254.169.254", ""},
		{"127.0.0.1:8080", "169.254.169.254", "http://127.0.0.1:8080", ""},
		{"http://127.0.0.1:8080/", "x", "http://127.0.0.1:8080", ""},
		{"ftp://127.0.0.1", "x", "", `TEST_METADATA_ENDPOINT="ftp://127.0.0.1": want http://host[:port] or host[:port]`},
		{"http://", "x", "", `TEST_METADATA_ENDPOINT="http://"`},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv("TEST_METADATA_ENDPOINT", tt.env)
			u, err := metadata.Endpoint("TEST_METADATA_ENDPOINT", tt.def)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Endpoint = %v, %v; want error %q", u, err, tt.err)
				}
				return
			}
			if err != nil || u.String() != tt.want {
				t.Fatalf("Endpoint = %v, %v; want %s", u, err, tt.want)
			}
		})
	}
}

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Write(make([]byte, metadata.MaxBody+1))
		case "/exact":
			w.Write(make([]byte, metadata.MaxBody))
		case "/redirect":
			http.Redirect(w, r, "http://192.0.2.1/elsewhere", http.StatusFound)
		}
	}))
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	c := metadata.New(nil)
	ctx := context.Background()
	if r, err := c.Do(ctx, "GET", srv.URL+"/exact", nil); err != nil || len(r.Body) != metadata.MaxBody {
		t.Errorf("a body of exactly MaxBody: %v", err)
	}
	if _, err := c.Do(ctx, "GET", srv.URL+"/big", nil); !errors.Is(err, metadata.ErrTooLarge) || !strings.Contains(err.Error(), "/big") {
		t.Errorf("a body over MaxBody: %v, want ErrTooLarge naming /big", err)
	}
	if _, err := c.Do(ctx, "GET", srv.URL+"/redirect", nil); err == nil || !strings.Contains(err.Error(), "refusing to follow") {
		t.Errorf("a redirect: %v, want refused", err)
	}
	if _, err := c.Do(ctx, "GET", closed+"/x", nil); !errors.Is(err, sdk.ErrNotThisCloud) || !strings.Contains(err.Error(), closed[len("http://"):]) {
		t.Errorf("nothing listening: %v, want not this cloud naming the address", err)
	}
}
