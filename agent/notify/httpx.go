package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxResponse bounds what is read of an answer: a target that answers
// garbage must not make the agent hold megabytes.
const maxResponse = 1 << 20

// permanentError marks a failure that retrying cannot fix (a 4xx other
// than 408 and 429): the message is set aside instead of retried forever.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err says that retrying is pointless.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// redactURL keeps scheme and host only: the path of a Slack webhook URL is
// its token, and query strings carry keys.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<url>"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// call sends body (JSON-encoded unless nil) and returns the status and at
// most maxResponse bytes of the answer. Errors name the method and the
// redacted URL, never the full URL or a header.
func call(ctx context.Context, client *http.Client, method, rawURL string, hdr http.Header, body any) ([]byte, error) {
	where := method + " " + redactURL(rawURL)
	var r io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return nil, fmt.Errorf("%s: encoding body: %w", where, err)
			}
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, r)
	if err != nil {
		// The error of NewRequest quotes the URL.
		return nil, &permanentError{fmt.Errorf("%s: bad request URL", where)}
	}
	req.Header = hdr.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "gopatrol-notify")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // *url.Error quotes the whole URL
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("%s: reading answer: %w", where, err)
	}
	if resp.StatusCode/100 == 2 {
		return data, nil
	}
	err = fmt.Errorf("%s: HTTP %d: %s", where, resp.StatusCode, snippet(data))
	switch {
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return nil, err
	}
	return nil, &permanentError{err}
}

// snippet is the start of an answer, printable, for an error message.
func snippet(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, string(b))
	s = truncate(strings.TrimSpace(s), 200)
	if s == "" {
		return "(empty answer)"
	}
	return s
}

// callJSON is call for a JSON answer: it decodes the answer into out and
// returns the raw answer too, for error messages. Garbage is an error that
// names the target.
func callJSON(ctx context.Context, client *http.Client, rawURL string, hdr http.Header, body, out any) ([]byte, error) {
	data, err := call(ctx, client, http.MethodPost, rawURL, hdr, body)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("POST %s: answer is not the expected JSON (%v): %s", redactURL(rawURL), err, snippet(data))
	}
	return data, nil
}

// truncate cuts s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
