package sdk

import (
	"context"
	"errors"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/gopatrol/gopatrol/plugins/internal/probev1"
)

// scripted answers what the fuzzer says.
type scripted struct {
	attrs map[string]string
	err   error
}

func (s scripted) Info() Info { return Info{Name: "scripted"} }
func (s scripted) Detect(context.Context) (map[string]string, error) {
	return s.attrs, s.err
}

// A probe's answer carries text from a metadata service (Alibaba and GCP
// answer plain text): whatever it holds, the SDK must put a message on the
// wire that protobuf can marshal (strings must be UTF-8), and must not
// report a malformed attribute as detected.
func FuzzDetectResponse(f *testing.F) {
	f.Add("cloud.region", "eu-west-1", "", 0)
	f.Add("cloud.region", "eu-west-1\xff", "", 0)
	f.Add("cloud.\xferegion", "x", "", 0)
	f.Add("", "", "GET /latest/meta-data/region-id: \xff\xfe", 1)
	f.Add("", "", "no metadata service at 169.254.169.254:80", 2)
	f.Fuzz(func(t *testing.T, k, v, reason string, kind int) {
		var p scripted
		switch kind % 3 {
		case 0:
			p.attrs = map[string]string{k: v}
		case 1:
			p.err = errors.New(reason)
		default:
			p.err = NotThisCloudf("%s", reason)
		}
		resp, err := (&server{impl: p}).Detect(context.Background(), &probev1.DetectRequest{})
		if err != nil {
			t.Fatalf("Detect: %v", err)
		}
		if _, err := proto.Marshal(resp); err != nil {
			t.Fatalf("the answer cannot go on the wire: %v (%+v)", err, resp)
		}
		if kind%3 == 0 && (!utf8.ValidString(k) || !utf8.ValidString(v)) && resp.GetStatus() == probev1.DetectStatus_DETECT_STATUS_DETECTED {
			t.Fatalf("attribute %q=%q is not UTF-8 but was reported detected", k, v)
		}
	})
}
