package bgp

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParsePeer(t *testing.T) {
	tests := []struct {
		in      string
		want    Peer
		wantErr string // substring; empty: must succeed
	}{
		{in: "198.51.100.1,64500", want: Peer{Address: netip.MustParseAddr("198.51.100.1"), AS: 64500}},
		{in: "2001:db8:100::1,4200000000", want: Peer{Address: netip.MustParseAddr("2001:db8:100::1"), AS: 4200000000}},
		{in: "::ffff:198.51.100.1,1", want: Peer{Address: netip.MustParseAddr("198.51.100.1"), AS: 1}},
		{in: "198.51.100.1,4294967295", want: Peer{Address: netip.MustParseAddr("198.51.100.1"), AS: 4294967295}},
		{
			in: "198.51.100.1, 64500, port=1179, password=a=b c, multihop=2, hold=9s",
			want: Peer{Address: netip.MustParseAddr("198.51.100.1"), AS: 64500, Port: 1179,
				Password: "a=b c", Multihop: 2, HoldTime: 9 * time.Second},
		},
		{in: "198.51.100.1,64500,hold=3s", want: Peer{Address: netip.MustParseAddr("198.51.100.1"), AS: 64500, HoldTime: 3 * time.Second}},
		{in: "198.51.100.1,64500,hold=18h12m15s", want: Peer{Address: netip.MustParseAddr("198.51.100.1"), AS: 64500, HoldTime: 65535 * time.Second}},
		{in: "198.51.100.1,64500,multihop=255", want: Peer{Address: netip.MustParseAddr("198.51.100.1"), AS: 64500, Multihop: 255}},

		{in: "", wantErr: `want ADDRESS,AS`},
		{in: "198.51.100.1", wantErr: `want ADDRESS,AS`},
		{in: "router1,64500", wantErr: `bad address "router1"`},
		{in: "198.51.100.300,64500", wantErr: `bad address "198.51.100.300"`},
		{in: "198.51.100.0/24,64500", wantErr: `bad address "198.51.100.0/24"`},
		{in: "fe80::1%eth0,64500", wantErr: `bad address "fe80::1%eth0"`},
		{in: "198.51.100.1,0", wantErr: `AS "0" out of range`},
		{in: "198.51.100.1,4294967296", wantErr: `AS "4294967296" out of range`},
		{in: "198.51.100.1,-1", wantErr: `bad AS "-1"`},
		{in: "198.51.100.1,AS64500", wantErr: `bad AS "AS64500"`},
		{in: "198.51.100.1,", wantErr: `bad AS ""`},
		{in: "198.51.100.1,64500,port=0", wantErr: `bad port "0"`},
		{in: "198.51.100.1,64500,port=65536", wantErr: `bad port "65536"`},
		{in: "198.51.100.1,64500,port=bgp", wantErr: `bad port "bgp"`},
		{in: "198.51.100.1,64500,password=", wantErr: `empty password`},
		{in: "198.51.100.1,64500,multihop=0", wantErr: `bad multihop TTL "0"`},
		{in: "198.51.100.1,64500,multihop=256", wantErr: `bad multihop TTL "256"`},
		{in: "198.51.100.1,64500,hold=9", wantErr: `bad hold duration "9"`},
		{in: "198.51.100.1,64500,hold=soon", wantErr: `bad hold duration "soon"`},
		{in: "198.51.100.1,64500,hold=2s", wantErr: `bad hold duration "2s": want 3s..`},
		{in: "198.51.100.1,64500,hold=0s", wantErr: `bad hold duration "0s"`},
		{in: "198.51.100.1,64500,hold=3500ms", wantErr: `want whole seconds`},
		{in: "198.51.100.1,64500,hold=18h12m16s", wantErr: `bad hold duration "18h12m16s"`},
		{in: "198.51.100.1,64500,ttl=2", wantErr: `unknown option "ttl"`},
		{in: "198.51.100.1,64500,passive", wantErr: `option "passive" is not key=value`},
		{in: "198.51.100.1,64500,port=1,port=2", wantErr: `option "port" given twice`},
	}
	for _, tt := range tests {
		got, err := ParsePeer(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParsePeer(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.in) {
				t.Errorf("ParsePeer(%q) error %q does not quote the value", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePeer(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParsePeer(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParsePathAttrs(t *testing.T) {
	tests := []struct {
		in      string
		want    PathAttrs
		wantErr string
	}{
		{in: "", want: PathAttrs{}},
		{in: "  ", want: PathAttrs{}},
		{in: "community=65000:100", want: PathAttrs{Communities: []string{"65000:100"}}},
		{in: "local-pref=200", want: PathAttrs{LocalPref: 200}},
		{in: "local-pref=4294967295", want: PathAttrs{LocalPref: 4294967295}},
		{
			in:   "community=65000:100, community=0:0,community=65535:65535,local-pref=200",
			want: PathAttrs{Communities: []string{"65000:100", "0:0", "65535:65535"}, LocalPref: 200},
		},
		{in: "community=no-export,community=no-advertise,community=no-export-subconfed",
			want: PathAttrs{Communities: []string{"no-export", "no-advertise", "no-export-subconfed"}}},
		// Canonical form: leading zeros dropped, a well-known value by name, duplicates once.
		{in: "community=065000:0100,community=65535:65281,community=65000:100",
			want: PathAttrs{Communities: []string{"65000:100", "no-export"}}},

		{in: "community=65536:1", wantErr: `bad community "65536:1"`},
		{in: "community=1:65536", wantErr: `bad community "1:65536"`},
		{in: "community=65000", wantErr: `bad community "65000"`},
		{in: "community=65000:100:1", wantErr: `bad community "65000:100:1"`},
		{in: "community=-1:1", wantErr: `bad community "-1:1"`},
		{in: "community=", wantErr: `bad community ""`},
		{in: "community=NO-EXPORT", wantErr: `bad community "NO-EXPORT"`},
		{in: "local-pref=0", wantErr: `bad local-pref "0"`},
		{in: "local-pref=4294967296", wantErr: `bad local-pref "4294967296"`},
		{in: "local-pref=high", wantErr: `bad local-pref "high"`},
		{in: "local-pref=100,local-pref=200", wantErr: `local-pref given twice`},
		{in: "med=10", wantErr: `unknown option "med"`},
		{in: "community=65000:1,", wantErr: `option "" is not key=value`},
		{in: "65000:100", wantErr: `option "65000:100" is not key=value`},
	}
	for _, tt := range tests {
		got, err := ParsePathAttrs(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParsePathAttrs(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePathAttrs(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParsePathAttrs(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseAS(t *testing.T) {
	for in, want := range map[string]uint32{"1": 1, "64512": 64512, "4294967295": 4294967295, "023456": 23456} {
		if got, err := ParseAS(in); err != nil || got != want {
			t.Errorf("ParseAS(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "4294967296", "18446744073709551616", "-5", "1.5", "AS1", ""} {
		if got, err := ParseAS(in); err == nil || !strings.Contains(err.Error(), `"`+in+`"`) {
			t.Errorf("ParseAS(%q) = %d, %v; want an error quoting the value", in, got, err)
		}
	}
}

// TestCommunityRoundTrip checks that every canonical community parses back
// to the value it came from.
func TestCommunityRoundTrip(t *testing.T) {
	for _, v := range []uint32{0, 1, 65535, 65536, 0xfde80064, 0xffffff01, 0xffffff02, 0xffffff03, 0xffffff04, 0xffffffff} {
		s := formatCommunity(v)
		got, err := parseCommunity(s)
		if err != nil || got != v {
			t.Errorf("community %#x -> %q -> %#x, %v", v, s, got, err)
		}
	}
}
