package aws

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/internal/testgate"
	"github.com/gopatrol/gopatrol/plugins/probetest"
)

func TestMain(m *testing.M) {
	probetest.InNetns()
	os.Exit(m.Run())
}

// The ioctl reader against a real veth pair, made in the test's own
// network namespace: veth's ethtool statistics include peer_ifindex,
// which must be the peer's index.
func TestEthtoolStatsOfVeth(t *testing.T) {
	testgate.Root(t, "creating a veth pair needs root")
	if os.Getenv("GOPATROL_TEST_NETNS") == "" {
		testgate.Missing(t, "not in a private network namespace (unshare -n): not creating interfaces on the host")
	}
	ip := testgate.Tool(t, "ip", "iproute2")
	if out, err := exec.Command(ip, "link", "add", "vtest0", "type", "veth", "peer", "name", "vtest1").CombinedOutput(); err != nil {
		testgate.Missing(t, "ip link add type veth: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "link", "del", "vtest0").Run() })
	peer, err := net.InterfaceByName("vtest1")
	if err != nil {
		t.Fatal(err)
	}
	driver, stats, err := ethtoolStats("vtest0")
	if err != nil {
		t.Fatal(err)
	}
	if driver != "veth" {
		t.Errorf("driver %q, want veth", driver)
	}
	want := uint64(peer.Index)
	if got, ok := stats["peer_ifindex"]; !ok || got != want {
		t.Errorf("peer_ifindex = %d (present %v), want %d; stats %v", got, ok, want, stats)
	}
	// An interface gone since it was listed is no ENA interface.
	if d, st, err := ethtoolStats("nosuch0"); d != "" || st != nil || err != nil {
		t.Errorf("ethtoolStats(nosuch0) = %q, %v, %v; want nothing", d, st, err)
	}
}

// enaPoints against statistics named as the ENA driver names them
// (ethtool -S on an ENA interface).
func TestENAPoints(t *testing.T) {
	enaStats := map[string]uint64{
		"tx_timeout": 0, "bw_in_allowance_exceeded": 5, "bw_out_allowance_exceeded": 0,
		"pps_allowance_exceeded": 12, "conntrack_allowance_exceeded": 1,
		"linklocal_allowance_exceeded": 3, "conntrack_allowance_available": 9000,
	}
	read := func(ifn string) (string, map[string]uint64, error) {
		switch ifn {
		case "ens5":
			return "ena", enaStats, nil
		case "old0":
			return "ena", map[string]uint64{"tx_timeout": 0}, nil
		case "veth0":
			return "veth", map[string]uint64{"pps_allowance_exceeded": 99}, nil
		}
		return "", nil, errors.New(ifn + ": no such device")
	}
	for _, tc := range []struct {
		name    string
		ifs     []string
		want    map[string]float64
		wantErr string
	}{
		{"ena", []string{"ens5", "veth0"}, map[string]float64{"bw_in": 5, "bw_out": 0, "pps": 12, "conntrack": 1, "linklocal": 3}, ""},
		{"not ena", []string{"veth0"}, map[string]float64{}, ""},
		{"old driver", []string{"old0"}, map[string]float64{}, "2.2.10"},
		{"gone", []string{"gone0", "ens5"}, map[string]float64{"bw_in": 5, "bw_out": 0, "pps": 12, "conntrack": 1, "linklocal": 3}, "no such device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pts, err := enaPoints(tc.ifs, read, time.Unix(1, 0))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			got := map[string]float64{}
			for _, p := range pts {
				if p.Name != metricAllowance || p.Unit != "{packet}" || p.Attributes[attrInterface] != "ens5" {
					t.Errorf("point %+v", p)
				}
				got[p.Attributes[attrAllowance]] = p.Value
			}
			if len(got) != len(tc.want) {
				t.Fatalf("points %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}
