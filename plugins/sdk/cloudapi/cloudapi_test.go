package cloudapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// Temporary credentials are fetched again Refresh before they expire,
// long-lived ones never, and at once after Invalidate.
func TestCredentialCache(t *testing.T) {
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	fetches := 0
	c := CredentialCache{Now: func() time.Time { return now }, Fetch: func(context.Context) (Credentials, error) {
		fetches++
		return Credentials{AccessKeyID: fmt.Sprint("K", fetches), Secret: "s", Expires: now.Add(time.Hour)}, nil
	}}
	get := func() string {
		t.Helper()
		cr, err := c.Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return cr.AccessKeyID
	}
	for _, step := range []struct {
		advance time.Duration
		invalid bool
		want    string
	}{
		{0, false, "K1"},
		{50 * time.Minute, false, "K1"}, // 10 minutes left
		{6 * time.Minute, false, "K2"},  // 4 minutes left: refreshed
		{time.Minute, true, "K3"},       // the API said expired
		{10 * time.Minute, false, "K3"},
	} {
		now = now.Add(step.advance)
		if step.invalid {
			c.Invalidate()
		}
		if got := get(); got != step.want {
			t.Fatalf("after %v: key %s, want %s", step.advance, got, step.want)
		}
	}

	for _, tc := range []struct {
		name string
		cr   Credentials
		err  error
		want string
	}{
		{"source down", Credentials{}, errors.New("connection refused"), "connection refused"},
		{"empty secret", Credentials{AccessKeyID: "K"}, nil, "empty key or secret"},
		{"already expired", Credentials{AccessKeyID: "K", Secret: "s", Expires: now.Add(-time.Second)}, nil, "expired at"},
	} {
		bad := CredentialCache{Now: func() time.Time { return now }, Fetch: func(context.Context) (Credentials, error) { return tc.cr, tc.err }}
		if _, err := bad.Get(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestSampler(t *testing.T) {
	t0 := time.Now()
	calls := 0
	fail := false
	fetch := func() ([]sdk.Point, error) {
		calls++
		if fail {
			return nil, errors.New("down")
		}
		return []sdk.Point{{Name: "x", Value: float64(calls)}}, nil
	}
	s := Sampler{Every: time.Minute}
	for _, step := range []struct {
		at      time.Duration
		fail    bool
		want    float64 // -1: no points
		wantErr bool
	}{
		{0, false, 1, false},
		{30 * time.Second, false, 1, false}, // cached
		{time.Minute, false, 2, false},
		{2 * time.Minute, true, -1, true},
		{2*time.Minute + time.Second, false, -1, false}, // within the interval after a failure: nothing stale
		{3 * time.Minute, false, 4, false},
	} {
		fail = step.fail
		pts, err := s.Points(t0.Add(step.at), fetch)
		if (err != nil) != step.wantErr {
			t.Fatalf("at %v: error %v", step.at, err)
		}
		got := -1.0
		if len(pts) > 0 {
			got = pts[0].Value
		}
		if got != step.want {
			t.Fatalf("at %v: %v, want %v", step.at, got, step.want)
		}
	}
	off := Sampler{}
	if pts, err := off.Points(t0, fetch); pts != nil || err != nil {
		t.Errorf("an off sampler called: %v %v", pts, err)
	}
}

func TestRetry(t *testing.T) {
	n := 0
	err := Retry(context.Background(), 4, time.Millisecond, func() error {
		n++
		if n < 3 {
			return fmt.Errorf("%w: throttled", ErrRetry)
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Errorf("Retry: %v after %d attempts, want success after 3", err, n)
	}
	n = 0
	err = Retry(context.Background(), 4, time.Millisecond, func() error { n++; return errors.New("denied") })
	if err == nil || n != 1 {
		t.Errorf("a final error retried: %d attempts", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = Retry(ctx, 10, time.Second, func() error { return fmt.Errorf("%w: throttled", ErrRetry) })
	if err == nil || !strings.Contains(err.Error(), "gave up waiting") || time.Since(start) > time.Second {
		t.Errorf("Retry past the deadline: %v after %v", err, time.Since(start))
	}
}

func TestRoleCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"ec2", `{"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2026-11-30T09:00:00Z"}`, ""},
		{"not JSON", `<html>`, "not JSON"},
		{"failed", `{"Code":"AssumeRoleUnauthorizedAccess"}`, `Code "AssumeRoleUnauthorizedAccess"`},
		{"no expiry", `{"Code":"Success","AccessKeyId":"A","SecretAccessKey":"s"}`, "Expiration"},
	} {
		c, err := RoleCredentials([]byte(tc.doc), "SecretAccessKey", "Token")
		if tc.want == "" && (err != nil || c.Secret != "s" || c.SessionToken != "t" || c.Expires.Hour() != 9) ||
			tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, %v; want %q", tc.name, c, err, tc.want)
		}
	}
	for list, want := range map[string]string{"role-a\n": "role-a", "role-a\nrole-b": "role-a", "": "", "../x": ""} {
		got, err := RoleName(list)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("RoleName(%q) = %q, %v; want %q", list, got, err, want)
		}
	}
}

func TestCredentialsNeverPrinted(t *testing.T) {
	c := Credentials{AccessKeyID: "AKIAEXAMPLEKEY", Secret: "s3cr3t-value", SessionToken: "tok-value"}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "creds", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), b.String()} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "tok-value") || strings.Contains(s, "EXAMPLEKEY") {
			t.Errorf("credentials leak: %s", s)
		}
	}
}

// The client handed to the SDKs: a body of MaxBody bytes reads whole, one
// byte more fails with ErrTooLarge naming the host but not the query; a
// redirect is refused.
func TestHTTPClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/exact":
			w.Write(make([]byte, MaxBody))
		case "/big":
			w.Write(make([]byte, MaxBody+1))
		case "/redirect":
			http.Redirect(w, r, "http://192.0.2.1/elsewhere", http.StatusFound)
		}
	}))
	defer srv.Close()
	c := NewHTTPClient(nil)
	read := func(path string) ([]byte, error) {
		resp, err := c.Get(srv.URL + path + "?SecurityToken=tok-value")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	for _, tc := range []struct {
		path, wantErr string
		wantLen       int
	}{
		{"/exact", "", MaxBody},
		{"/big", "API answer too large", MaxBody},
		{"/redirect", "refusing to follow", 0},
	} {
		b, err := read(tc.path)
		if tc.wantErr == "" && (err != nil || len(b) != tc.wantLen) {
			t.Errorf("%s: %d bytes, %v; want %d bytes", tc.path, len(b), err, tc.wantLen)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: %v, want an error with %q", tc.path, err, tc.wantErr)
		}
		if tc.path == "/big" && (!errors.Is(err, ErrTooLarge) || strings.Contains(err.Error(), "tok-value") || len(b) != MaxBody) {
			t.Errorf("/big: %d bytes, %v: want MaxBody bytes and ErrTooLarge without the query", len(b), err)
		}
	}
}
