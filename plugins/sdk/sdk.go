package sdk

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/gopatrol/gopatrol/plugins/internal/probev1"
)

// ProtocolVersion is the go-plugin protocol version of gopatrol.probe.v1.
// It changes only with a breaking change of the protocol (a new package).
const ProtocolVersion = 1

// PluginName is the name under which the probe is served in go-plugin's
// plugin set.
const PluginName = "probe"

// Handshake is shared by the host and every plugin. The cookie is not a
// security measure: it stops a user who runs a plugin by hand from staring
// at a gRPC address, and stops the host from running a binary that is not
// a gopatrol probe.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "GOPATROL_PROBE_PLUGIN",
	MagicCookieValue: "6f1c2a8e4b7d4e0f9a3c5b2d1e8f7a60",
}

// ErrNotThisCloud is what Detect returns (possibly wrapped) when the node
// does not run on the probe's cloud: the metadata service is not there.
// Any other error means "on this cloud, but the metadata is broken".
var ErrNotThisCloud = errors.New("not this cloud")

// NotThisCloudf returns an error that wraps ErrNotThisCloud with the reason.
func NotThisCloudf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrNotThisCloud, fmt.Sprintf(format, a...))
}

// Info describes a probe.
type Info struct {
	Name        string
	Version     string
	Description string
	// AttributeKeys lists the attributes Detect may return.
	AttributeKeys []string
}

// Point is one vendor metric point returned by Collect.
type Point struct {
	Name         string
	Value        float64
	Unit         string
	Attributes   map[string]string
	TimeUnixNano int64
}

// Probe is what a plugin implements. Detect must honour ctx: the host puts
// a deadline on every call.
type Probe interface {
	Info() Info
	// Detect returns the node's resource attributes (semconv names, see
	// attributes.go), an error wrapping ErrNotThisCloud, or another error
	// when the metadata service is there but broken.
	Detect(ctx context.Context) (map[string]string, error)
}

// Collector is implemented by probes that also export vendor metrics.
// Probes without it answer Collect with no points.
type Collector interface {
	Collect(ctx context.Context) ([]Point, error)
}

// GRPCPlugin is the go-plugin glue on both sides: the plugin serves Impl,
// the host gets a *Client.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Probe
}

// GRPCServer registers the probe's gRPC service.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	probev1.RegisterProbeServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns a *Client for the host.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &Client{rpc: probev1.NewProbeClient(cc)}, nil
}

// PluginSet is the plugin map both sides give go-plugin.
func PluginSet(impl Probe) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}

type server struct {
	probev1.UnimplementedProbeServer
	impl Probe
}

func (s *server) Info(context.Context, *probev1.InfoRequest) (*probev1.InfoResponse, error) {
	i := s.impl.Info()
	keys := make([]string, len(i.AttributeKeys))
	for n, k := range i.AttributeKeys {
		keys[n] = text(k)
	}
	return &probev1.InfoResponse{Name: text(i.Name), Version: text(i.Version), Description: text(i.Description), AttributeKeys: keys}, nil
}

// text makes s fit a protobuf string, which must be UTF-8: a probe's
// messages quote what metadata services answer, which may be anything.
func text(s string) string { return strings.ToValidUTF8(s, "\ufffd") }

// checkAttrs refuses attributes that are not UTF-8: the metadata service
// answered garbage, which is "broken", not "detected", and protobuf could
// not carry it anyway.
func checkAttrs(attrs map[string]string) error {
	for k, v := range attrs {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("attribute %q=%q is not valid UTF-8: the metadata service answered garbage", k, v)
		}
	}
	return nil
}

// Margin is how much earlier than the host's deadline a probe's context
// ends, so that the probe's own error (which request was slow) reaches
// the host before the host gives up on the call.
const margin = 50 * time.Millisecond

func withMargin(ctx context.Context) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	m := min(margin, time.Until(d)/5)
	return context.WithDeadline(ctx, d.Add(-m))
}

func (s *server) Detect(ctx context.Context, _ *probev1.DetectRequest) (*probev1.DetectResponse, error) {
	ctx, cancel := withMargin(ctx)
	defer cancel()
	attrs, err := s.impl.Detect(ctx)
	if err == nil {
		err = checkAttrs(attrs)
	}
	switch {
	case errors.Is(err, ErrNotThisCloud):
		return &probev1.DetectResponse{Status: probev1.DetectStatus_DETECT_STATUS_NOT_THIS_CLOUD, Reason: text(err.Error())}, nil
	case err != nil:
		if checkAttrs(attrs) != nil {
			attrs = nil
		}
		return &probev1.DetectResponse{Status: probev1.DetectStatus_DETECT_STATUS_ERROR, Reason: text(err.Error()), Attributes: attrs}, nil
	}
	return &probev1.DetectResponse{Status: probev1.DetectStatus_DETECT_STATUS_DETECTED, Attributes: attrs}, nil
}

func (s *server) Collect(ctx context.Context, _ *probev1.CollectRequest) (*probev1.CollectResponse, error) {
	c, ok := s.impl.(Collector)
	if !ok {
		return &probev1.CollectResponse{}, nil
	}
	ctx, cancel := withMargin(ctx)
	defer cancel()
	pts, err := c.Collect(ctx)
	if err != nil {
		return nil, err
	}
	resp := &probev1.CollectResponse{}
	for _, p := range pts {
		if err := checkAttrs(p.Attributes); err != nil {
			return nil, fmt.Errorf("point %q: %w", text(p.Name), err)
		}
		resp.Points = append(resp.Points, &probev1.Point{Name: text(p.Name), Value: p.Value, Unit: text(p.Unit), Attributes: p.Attributes, TimeUnixNano: p.TimeUnixNano})
	}
	return resp, nil
}

// Status is the outcome of Detect as the host sees it.
type Status string

const (
	Detected     Status = "detected"
	NotThisCloud Status = "not_this_cloud"
	Failed       Status = "error"
)

// Detection is the host-side result of one Detect call.
type Detection struct {
	Status     Status
	Attributes map[string]string
	Reason     string
}

// Client is the host side of a probe: the gRPC stub behind the Go API.
type Client struct {
	rpc probev1.ProbeClient
}

// Info asks the plugin who it is.
func (c *Client) Info(ctx context.Context) (Info, error) {
	r, err := c.rpc.Info(ctx, &probev1.InfoRequest{})
	if err != nil {
		return Info{}, err
	}
	return Info{Name: r.GetName(), Version: r.GetVersion(), Description: r.GetDescription(), AttributeKeys: r.GetAttributeKeys()}, nil
}

// Detect asks the plugin for the node's attributes. An error is a
// transport failure (plugin crashed, deadline); a probe's own verdict,
// including its errors, is in the Detection.
func (c *Client) Detect(ctx context.Context) (Detection, error) {
	r, err := c.rpc.Detect(ctx, &probev1.DetectRequest{})
	if err != nil {
		return Detection{}, err
	}
	d := Detection{Attributes: maps.Clone(r.GetAttributes()), Reason: r.GetReason()}
	switch r.GetStatus() {
	case probev1.DetectStatus_DETECT_STATUS_DETECTED:
		d.Status = Detected
	case probev1.DetectStatus_DETECT_STATUS_NOT_THIS_CLOUD:
		d.Status = NotThisCloud
	default:
		d.Status = Failed
		if d.Reason == "" {
			d.Reason = fmt.Sprintf("plugin answered status %v", r.GetStatus())
		}
	}
	return d, nil
}

// Collect asks the plugin for its vendor metric points.
func (c *Client) Collect(ctx context.Context) ([]Point, error) {
	r, err := c.rpc.Collect(ctx, &probev1.CollectRequest{})
	if err != nil {
		return nil, err
	}
	pts := make([]Point, 0, len(r.GetPoints()))
	for _, p := range r.GetPoints() {
		pts = append(pts, Point{Name: p.GetName(), Value: p.GetValue(), Unit: p.GetUnit(), Attributes: p.GetAttributes(), TimeUnixNano: p.GetTimeUnixNano()})
	}
	return pts, nil
}
