package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a signed webhook call. The signature is
// "sha256=" + hex(HMAC-SHA256(key, timestamp + "." + body)): the timestamp
// is signed so that a receiver can refuse replays.
const (
	SignatureHeader = "X-Gopatrol-Signature"
	TimestampHeader = "X-Gopatrol-Timestamp"
	EventHeader     = "X-Gopatrol-Event"
)

type webhook struct {
	name   string
	cfg    WebhookConfig
	client *http.Client
	now    func() time.Time
}

func (w *webhook) Deliver(ctx context.Context, m *Message) (string, error) {
	key, err := w.cfg.Secret.Load()
	if err != nil {
		return "", fmt.Errorf("webhook %s: %w", w.name, err)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("webhook %s: %w", w.name, err)
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	hdr := http.Header{}
	hdr.Set(TimestampHeader, ts)
	hdr.Set(SignatureHeader, Sign([]byte(key), ts, body))
	hdr.Set(EventHeader, string(m.Kind))
	_, err = call(ctx, w.client, http.MethodPost, w.cfg.URL, hdr, body)
	return "", err
}

// Sign returns the signature header value for body sent at ts.
func Sign(key []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify is what a receiver runs: it checks the signature in constant
// time and refuses a timestamp further than maxAge from now.
func Verify(key []byte, ts, signature string, body []byte, now time.Time, maxAge time.Duration) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%s %q is not a Unix time", TimestampHeader, ts)
	}
	if age := now.Sub(time.Unix(sec, 0)); age > maxAge || age < -maxAge {
		return fmt.Errorf("%s is %s away from now, more than %s: a replay or a skewed clock", TimestampHeader, age.Round(time.Second), maxAge)
	}
	if !strings.HasPrefix(signature, "sha256=") {
		return fmt.Errorf("%s does not start with sha256=", SignatureHeader)
	}
	if !hmac.Equal([]byte(signature), []byte(Sign(key, ts, body))) {
		return errors.New("signature mismatch")
	}
	return nil
}
