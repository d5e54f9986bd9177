package daemon

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raftvip/raftvip/raftstore"
	"github.com/raftvip/raftvip/vip/bgp"
)

// bgpConfig is a valid bgp-mode voter configuration that each case changes.
func bgpConfig() Config {
	return Config{
		NodeName: "n1", AdvertiseAddress: "198.51.100.11", RaftPort: 7950, StatusAddress: ":7951",
		Peers: []string{"n1=198.51.100.11:7950"}, InsecureTransport: true,
		Raft: raftstore.DefaultTimeouts(), FenceTimeout: 300 * time.Millisecond, NodeDownTimeout: 600 * time.Millisecond,
		WorkerRemovalTimeout: 10 * time.Minute, APIServerHealthInterval: 250 * time.Millisecond,
		LogFormat: "text", LogLevel: "info",
		Mode: ModeBGP, BGPAS: "64512", BGPPeers: []string{"198.51.100.1,64500"},
	}
}

func TestParseBGPAccepts(t *testing.T) {
	c := bgpConfig()
	c.ControlPlaneVIPs = []string{"198.51.100.100", "2001:db8:100::100"}
	c.BGPNextHopIPv6 = "2001:db8:100::11"
	c.BGPPeers = []string{"198.51.100.1,64500,hold=3s,password=s3cret", "2001:db8:100::1,64501,port=1179,multihop=2"}
	c.BGPSourceAddress = "198.51.100.11"
	c.Pools = []string{"web=198.51.100.128/28", "db=198.51.100.144/28"}
	c.BGPPoolAttrs = []string{"web=community=65000:100,community=no-export,local-pref=200", "db="}
	p, err := c.Validate()
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := bgpSettings{
		AS:       64512,
		RouterID: netip.MustParseAddr("198.51.100.11"),
		Peers: []bgp.Peer{
			{Address: netip.MustParseAddr("198.51.100.1"), AS: 64500, HoldTime: 3 * time.Second, Password: "s3cret"},
			{Address: netip.MustParseAddr("2001:db8:100::1"), AS: 64501, Port: 1179, Multihop: 2},
		},
		Source:   netip.MustParseAddr("198.51.100.11"),
		NextHop4: netip.MustParseAddr("198.51.100.11"),
		NextHop6: netip.MustParseAddr("2001:db8:100::11"),
		PoolAttrs: map[string]bgp.PathAttrs{
			"web": {Communities: []string{"65000:100", "no-export"}, LocalPref: 200},
			"db":  {},
		},
	}
	if !reflect.DeepEqual(p.BGP, want) {
		t.Fatalf("BGP settings =\n%+v\nwant\n%+v", p.BGP, want)
	}
	if p.Interface != "" {
		t.Fatalf("interface %q appeared from nowhere", p.Interface)
	}
}

func TestParseBGPDefaultsAndIPv6Nodes(t *testing.T) {
	c := bgpConfig()
	c.BGPRouterID = "10.0.0.1"
	p, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if p.BGP.RouterID != netip.MustParseAddr("10.0.0.1") || p.BGP.NextHop6.IsValid() {
		t.Fatalf("router ID %s, IPv6 next hop %s", p.BGP.RouterID, p.BGP.NextHop6)
	}
	// An IPv6 node: its address is the IPv6 next hop; it has no IPv4 one.
	c = bgpConfig()
	c.AdvertiseAddress, c.Peers = "2001:db8:100::11", []string{"n1=[2001:db8:100::11]:7950"}
	c.BGPRouterID = "198.51.100.11"
	c.ControlPlaneVIPs = []string{"2001:db8:100::100"}
	if p, err = c.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.BGP.NextHop4.IsValid() || p.BGP.NextHop6 != netip.MustParseAddr("2001:db8:100::11") {
		t.Fatalf("next hops %s / %s", p.BGP.NextHop4, p.BGP.NextHop6)
	}
	if cfg := p.BGP.speakerConfig(); cfg.AS != 64512 || len(cfg.Peers) != 1 || cfg.NextHop6 != p.BGP.NextHop6 {
		t.Fatalf("speaker config %+v", cfg)
	}
}

func TestParseBGPRefuses(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Config)
		flag   string
		value  string
	}{
		{"no AS", func(c *Config) { c.BGPAS = "" }, "bgp-as", ""},
		{"AS not a number", func(c *Config) { c.BGPAS = "AS64512" }, "bgp-as", "AS64512"},
		{"AS zero", func(c *Config) { c.BGPAS = "0" }, "bgp-as", "0"},
		{"AS too large", func(c *Config) { c.BGPAS = "4294967296" }, "bgp-as", "4294967296"},
		{"no peer", func(c *Config) { c.BGPPeers = nil }, "bgp-peer", ""},
		{"peer without AS", func(c *Config) { c.BGPPeers = []string{"198.51.100.1"} }, "bgp-peer", "198.51.100.1"},
		{"peer with a bad address", func(c *Config) { c.BGPPeers = []string{"198.51.100.300,64500"} }, "bgp-peer", "198.51.100.300"},
		{"peer with a bad AS", func(c *Config) { c.BGPPeers = []string{"198.51.100.1,-5"} }, "bgp-peer", "-5"},
		{"peer with a short hold time", func(c *Config) { c.BGPPeers = []string{"198.51.100.1,64500,hold=1s"} }, "bgp-peer", "1s"},
		{"peer with an unknown option", func(c *Config) { c.BGPPeers = []string{"198.51.100.1,64500,ttl=2"} }, "bgp-peer", "ttl"},
		{"same router twice", func(c *Config) { c.BGPPeers = []string{"198.51.100.1,64500", "198.51.100.1,64501"} }, "bgp-peer", "198.51.100.1,64501"},
		{"router ID not IPv4", func(c *Config) { c.BGPRouterID = "2001:db8::1" }, "bgp-router-id", "2001:db8::1"},
		{"router ID zero", func(c *Config) { c.BGPRouterID = "0.0.0.0" }, "bgp-router-id", "0.0.0.0"},
		{"IPv6 node without router ID", func(c *Config) {
			c.AdvertiseAddress, c.Peers = "2001:db8:100::11", []string{"n1=[2001:db8:100::11]:7950"}
		}, "bgp-router-id", ""},
		{"bad source address", func(c *Config) { c.BGPSourceAddress = "eth0" }, "bgp-source-address", "eth0"},
		{"IPv4 as IPv6 next hop", func(c *Config) { c.BGPNextHopIPv6 = "198.51.100.11" }, "bgp-next-hop-ipv6", "198.51.100.11"},
		{"link-local IPv6 next hop", func(c *Config) { c.BGPNextHopIPv6 = "fe80::1" }, "bgp-next-hop-ipv6", "fe80::1"},
		{"IPv6 control-plane VIP without IPv6 next hop", func(c *Config) { c.ControlPlaneVIPs = []string{"2001:db8:100::100"} }, "control-plane-vip", "2001:db8:100::100"},
		{"IPv4 control-plane VIP on an IPv6 node", func(c *Config) {
			c.AdvertiseAddress, c.Peers, c.BGPRouterID = "2001:db8:100::11", []string{"n1=[2001:db8:100::11]:7950"}, "198.51.100.11"
			c.ControlPlaneVIPs = []string{"198.51.100.100"}
		}, "control-plane-vip", "198.51.100.100"},
		{"pool attributes without =", func(c *Config) { c.BGPPoolAttrs = []string{"web"} }, "bgp-pool-attrs", "web"},
		{"pool attributes for an unknown pool", func(c *Config) {
			c.Pools, c.BGPPoolAttrs = []string{"web=198.51.100.128/28"}, []string{"wbe=local-pref=5"}
		}, "bgp-pool-attrs", "wbe"},
		{"bad community", func(c *Config) { c.BGPPoolAttrs = []string{"web=community=70000:1"} }, "bgp-pool-attrs", "70000:1"},
		{"pool attributes twice", func(c *Config) { c.BGPPoolAttrs = []string{"web=local-pref=1", "web=local-pref=2"} }, "bgp-pool-attrs", "web=local-pref=2"},
		{"bgp flag in l2 mode", func(c *Config) { c.Mode = ModeL2; c.BGPAS = "" }, "bgp-peer", "198.51.100.1,64500"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := bgpConfig()
			tc.change(&c)
			_, err := c.Validate()
			var fe *FlagError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate = %v, want a FlagError for --%s", err, tc.flag)
			}
			if fe.Flag != tc.flag || !strings.Contains(err.Error(), tc.value) {
				t.Fatalf("error %q: want flag --%s and value %q", err, tc.flag, tc.value)
			}
		})
	}
}

func TestBGPModeNeedsNoInterface(t *testing.T) {
	c := bgpConfig()
	c.ControlPlaneVIPs = []string{"198.51.100.100"}
	if _, err := c.Validate(); err != nil {
		t.Fatalf("bgp mode with a control-plane VIP and no --interface: %v", err)
	}
	c.Mode, c.BGPAS, c.BGPPeers = ModeL2, "", nil
	_, err := c.Validate()
	var fe *FlagError
	if !errors.As(err, &fe) || fe.Flag != "interface" {
		t.Fatalf("l2 mode without --interface: %v, want a FlagError for --interface", err)
	}
}

func TestBGPModeRefusesPoolInterface(t *testing.T) {
	c := bgpConfig()
	c.Pools = []string{"vlan=198.51.100.200-198.51.100.210;interface=eth1"}
	_, err := c.Validate()
	var fe *FlagError
	if !errors.As(err, &fe) || fe.Flag != "pool" || !strings.Contains(err.Error(), "interface= is for l2 mode") {
		t.Fatalf("bgp mode with a pool interface: %v, want a FlagError for --pool", err)
	}
}
