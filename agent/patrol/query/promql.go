package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// PromQLConfig is a `promql` rule's source.
type PromQLConfig struct {
	// URL is the Prometheus base URL (http://prometheus:9090); the
	// query goes to URL + /api/v1/query.
	URL string
	// Query is the PromQL expression; it must yield one sample or a scalar.
	Query string
	// Timeout bounds one query (default 10s); it is also sent to
	// Prometheus as the query's own timeout.
	Timeout time.Duration
	// Client is the HTTP client (default: a plain one).
	Client *http.Client
}

// PromQL runs one instant query per evaluation.
type PromQL struct {
	cfg      PromQLConfig
	endpoint string
}

// NewPromQL checks cfg and returns the source.
func NewPromQL(cfg PromQLConfig) (*PromQL, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("promql: url %q is not an http(s) URL with a host", cfg.URL)
	}
	if u.User != nil {
		return nil, errors.New("promql: url carries credentials: put Prometheus behind a proxy that adds them")
	}
	if strings.TrimSpace(cfg.Query) == "" {
		return nil, errors.New("promql: empty query")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	return &PromQL{cfg: cfg, endpoint: strings.TrimRight(cfg.URL, "/") + "/api/v1/query"}, nil
}

// promResponse is the envelope of the Prometheus HTTP API.
type promResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// Query runs the instant query and returns its one value.
func (p *PromQL) Query(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	form := url.Values{"query": {p.cfg.Query}, "timeout": {p.cfg.Timeout.String()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, fmt.Errorf("promql: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("promql %s: %w: %w", p.endpoint, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("promql %s: %w: reading answer: %w", p.endpoint, ErrUnavailable, err)
	}
	var r promResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("promql %s: %w: HTTP %d, answer is not the Prometheus API's JSON", p.endpoint, ErrUnavailable, resp.StatusCode)
	}
	if r.Status != "success" {
		kind := ErrUnavailable
		if r.ErrorType == "bad_data" {
			kind = ErrBadQuery
		}
		return 0, fmt.Errorf("promql %q: %w: %s: %s", p.cfg.Query, kind, r.ErrorType, r.Error)
	}
	v, err := promValue(r.Data.ResultType, r.Data.Result)
	if err != nil {
		return 0, fmt.Errorf("promql %q: %w", p.cfg.Query, err)
	}
	return v, nil
}

// promValue extracts the one number of a scalar or a one-sample vector.
func promValue(resultType string, raw json.RawMessage) (float64, error) {
	var pair []json.RawMessage
	switch resultType {
	case "scalar":
		if err := json.Unmarshal(raw, &pair); err != nil {
			return 0, fmt.Errorf("%w: scalar %s", ErrNotNumber, raw)
		}
	case "vector":
		var samples []struct {
			Metric map[string]string `json:"metric"`
			Value  []json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(raw, &samples); err != nil {
			return 0, fmt.Errorf("%w: vector %s", ErrNotNumber, raw)
		}
		switch len(samples) {
		case 0:
			return 0, ErrNoData
		case 1:
			pair = samples[0].Value
		default:
			return 0, fmt.Errorf("%w: %d series (aggregate with sum, max, ... to one)", ErrManyValues, len(samples))
		}
	default:
		return 0, fmt.Errorf("%w: result type %q (use an instant query yielding a scalar or one sample)", ErrNotNumber, resultType)
	}
	if len(pair) != 2 {
		return 0, fmt.Errorf("%w: sample %v", ErrNotNumber, pair)
	}
	var s string
	if err := json.Unmarshal(pair[1], &s); err != nil {
		return 0, fmt.Errorf("%w: sample value %s", ErrNotNumber, pair[1])
	}
	v, err := strconv.ParseFloat(s, 64) // "NaN", "+Inf" parse too
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrNotNumber, s)
	}
	return v, nil
}
