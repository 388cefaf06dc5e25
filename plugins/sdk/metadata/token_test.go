package metadata_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

func TestTokenSource(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		ttl      string // the TTL header the service answers with
		wantErr  string
		notCloud bool
		puts     int // PUTs for the first two Token calls (one more after Invalidate)
	}{
		{name: "cached until invalidated", status: 200, body: "tok\n", puts: 1},
		{name: "expired at once (ttl 1s: renewed at 90%)", status: 200, body: "tok", ttl: "1", puts: 2},
		{name: "another cloud", status: 404, notCloud: true, wantErr: "answered 404: not test IMDS"},
		{name: "refused", status: 403, wantErr: "403 Forbidden (look at the hop limit)"},
		{name: "empty token", status: 200, body: " ", wantErr: "empty token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var puts atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPut || r.URL.Path != "/token" || r.Header.Get("X-Ttl") != "60" {
					http.Error(w, fmt.Sprintf("unexpected %s %s ttl %q", r.Method, r.URL.Path, r.Header.Get("X-Ttl")), 500)
					return
				}
				n := puts.Add(1)
				if tt.ttl != "" {
					w.Header().Set("X-Ttl", tt.ttl)
				}
				w.WriteHeader(tt.status)
				if strings.TrimSpace(tt.body) != "" {
					fmt.Fprintf(w, "%s%d", tt.body, n)
				} else {
					fmt.Fprint(w, tt.body)
				}
			}))
			defer srv.Close()
			base, _ := url.Parse(srv.URL)
			ts := &metadata.TokenSource{Client: metadata.New(nil), Path: "/token", TTLHeader: "X-Ttl", TTL: time.Minute,
				Service: "test IMDS", NotThisCloud: []int{404}, Hint: "look at the hop limit"}
			ctx := context.Background()
			tok, err := ts.Token(ctx, base)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, sdk.ErrNotThisCloud) != tt.notCloud {
					t.Fatalf("Token() = %q, %v; want error %q (not this cloud: %v)", tok, err, tt.wantErr, tt.notCloud)
				}
				return
			}
			if err != nil || !strings.HasPrefix(tok, "tok") {
				t.Fatalf("Token() = %q, %v", tok, err)
			}
			if tt.ttl == "1" {
				time.Sleep(time.Second) // 90% of the service's TTL has passed
			}
			again, err := ts.Token(ctx, base)
			if err != nil {
				t.Fatal(err)
			}
			if tt.ttl == "" && again != tok {
				t.Errorf("second Token() = %q, want the cached %q", again, tok)
			}
			ts.Invalidate()
			if _, err := ts.Token(ctx, base); err != nil {
				t.Fatal(err)
			}
			if want := int32(tt.puts + 1); puts.Load() != want {
				t.Errorf("%d PUTs, want %d", puts.Load(), want)
			}
		})
	}
}
