package ipam

import (
	"errors"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func rng(first, last string) Range { return Range{First: addr(first), Last: addr(last)} }

func TestParsePool(t *testing.T) {
	cases := []struct {
		name     string
		flag     string
		want     []Range
		auto     bool
		inclNB   bool
		iface    string
		wantErr  string // substring; "" means success
		wantPool string
	}{
		{
			name: "interface option", flag: "vlan=10.0.20.0/24;interface=eth0.20",
			want: []Range{rng("10.0.20.1", "10.0.20.254")}, auto: true, iface: "eth0.20", wantPool: "vlan",
		},
		{
			name: "interface with other options and spaces", flag: "nic2=10.0.30.5-10.0.30.9; auto-assign=false ; interface = ens4 ",
			want: []Range{rng("10.0.30.5", "10.0.30.9")}, auto: false, iface: "ens4", wantPool: "nic2",
		},
		{name: "interface empty", flag: "a=10.0.0.0/24;interface=", wantErr: "interface name is empty"},
		{name: "interface too long", flag: "a=10.0.0.0/24;interface=abcdefghijklmnop", wantErr: "longer than 15"},
		{name: "interface with slash", flag: "a=10.0.0.0/24;interface=eth/0", wantErr: "contains '/'"},
		{name: "interface dot", flag: "a=10.0.0.0/24;interface=..", wantErr: "not allowed"},
		{
			name: "v4 CIDR skips network and broadcast", flag: "a=10.0.0.0/24",
			want: []Range{rng("10.0.0.1", "10.0.0.254")}, auto: true, wantPool: "a",
		},
		{
			name: "include-network-broadcast keeps them", flag: "a=10.0.0.0/24;include-network-broadcast=true",
			want: []Range{rng("10.0.0.0", "10.0.0.255")}, auto: true, inclNB: true, wantPool: "a",
		},
		{
			name: "/30 skips two of four", flag: "a=10.0.0.4/30",
			want: []Range{rng("10.0.0.5", "10.0.0.6")}, auto: true, wantPool: "a",
		},
		{
			name: "/31 has no network or broadcast", flag: "a=10.0.0.4/31",
			want: []Range{rng("10.0.0.4", "10.0.0.5")}, auto: true, wantPool: "a",
		},
		{
			name: "/32 is one address", flag: "a=10.0.0.4/32",
			want: []Range{rng("10.0.0.4", "10.0.0.4")}, auto: true, wantPool: "a",
		},
		{
			name: "v6 CIDR skips the subnet-router anycast address", flag: "v6=2001:db8::/120",
			want: []Range{rng("2001:db8::1", "2001:db8::ff")}, auto: true, wantPool: "v6",
		},
		{
			name: "v6 anycast included on request", flag: "v6=2001:db8::/120;include-network-broadcast=true",
			want: []Range{rng("2001:db8::", "2001:db8::ff")}, auto: true, inclNB: true, wantPool: "v6",
		},
		{
			name: "v6 /126 skips anycast", flag: "v6=2001:db8::/126",
			want: []Range{rng("2001:db8::1", "2001:db8::3")}, auto: true, wantPool: "v6",
		},
		{
			name: "v6 /64", flag: "v6=2001:db8:1:2::/64",
			want: []Range{rng("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff")}, auto: true, wantPool: "v6",
		},
		{
			name: "v6 start-end from the all-zero address is taken literally", flag: "v6=2001:db8::-2001:db8::2",
			want: []Range{rng("2001:db8::", "2001:db8::2")}, auto: true, wantPool: "v6",
		},
		{
			name: "start-end taken literally", flag: "a=10.0.0.0-10.0.0.255",
			want: []Range{rng("10.0.0.0", "10.0.0.255")}, auto: true, wantPool: "a",
		},
		{
			name: "single address", flag: "a=10.0.0.7",
			want: []Range{rng("10.0.0.7", "10.0.0.7")}, auto: true, wantPool: "a",
		},
		{
			name: "dual-stack pool keeps declared order, spaces trimmed",
			flag: "dual=2001:db8::10-2001:db8::1f , 10.0.1.0/24",
			want: []Range{rng("2001:db8::10", "2001:db8::1f"), rng("10.0.1.1", "10.0.1.254")}, auto: true, wantPool: "dual",
		},
		{
			name: "auto-assign=false", flag: "manual=10.0.0.0/24;auto-assign=false",
			want: []Range{rng("10.0.0.1", "10.0.0.254")}, auto: false, wantPool: "manual",
		},
		{
			name: "both options, any order", flag: "m=10.0.0.0/30; include-network-broadcast=true ;auto-assign=false",
			want: []Range{rng("10.0.0.0", "10.0.0.3")}, auto: false, inclNB: true, wantPool: "m",
		},
		{
			name: "v6 start-end", flag: "v6=2001:db8::10-2001:db8::20",
			want: []Range{rng("2001:db8::10", "2001:db8::20")}, auto: true, wantPool: "v6",
		},
		{
			name: "upper-case v6 is canonicalised", flag: "v6=2001:DB8::/127",
			want: []Range{rng("2001:db8::", "2001:db8::1")}, auto: true, wantPool: "v6",
		},
		{
			name: "v6 /128", flag: "v6=2001:db8::7/128",
			want: []Range{rng("2001:db8::7", "2001:db8::7")}, auto: true, wantPool: "v6",
		},
		{
			name: "v4 /0 skips the two ends", flag: "all=0.0.0.0/0",
			want: []Range{rng("0.0.0.1", "255.255.255.254")}, auto: true, wantPool: "all",
		},
		{
			name: "spaces everywhere", flag: " a = 10.0.0.1 - 10.0.0.5 , 10.0.0.9 ; auto-assign = false ",
			want: []Range{rng("10.0.0.1", "10.0.0.5"), rng("10.0.0.9", "10.0.0.9")}, auto: false, wantPool: "a",
		},
		{name: "empty option", flag: "a=10.0.0.0/24;;", wantErr: `option "": want OPTION=VALUE`},
		{name: "no equals", flag: "10.0.0.0/24", wantErr: "want NAME=RANGE"},
		{name: "empty name", flag: "=10.0.0.0/24", wantErr: "want NAME=RANGE"},
		{name: "empty ranges", flag: "a=", wantErr: "want NAME=RANGE"},
		{name: "upper-case name", flag: "Prod=10.0.0.0/24", wantErr: "DNS label"},
		{name: "name with leading dash", flag: "-a=10.0.0.0/24", wantErr: "DNS label"},
		{name: "name with underscore", flag: "a_b=10.0.0.0/24", wantErr: "DNS label"},
		{name: "name too long", flag: strings.Repeat("a", 64) + "=10.0.0.0/24", wantErr: "longer than 63"},
		{name: "malformed CIDR", flag: "a=10.0.0.0/33", wantErr: `range "10.0.0.0/33" is not a valid CIDR`},
		{name: "garbage CIDR", flag: "a=10.0.0/24", wantErr: "not a valid CIDR"},
		{name: "host bits set", flag: "a=10.0.0.5/24", wantErr: "did you mean 10.0.0.0/24"},
		{name: "start after end", flag: "a=10.0.0.9-10.0.0.1", wantErr: "starts after it ends"},
		{name: "mixed families in start-end", flag: "a=10.0.0.1-2001:db8::1", wantErr: "mixes IPv4 and IPv6"},
		{name: "bad start-end", flag: "a=10.0.0.1-foo", wantErr: "want START-END"},
		{name: "not an address", flag: "a=foo", wantErr: `range "foo" is neither`},
		{name: "stray comma", flag: "a=10.0.0.0/24,", wantErr: "stray ','"},
		{name: "zone", flag: "a=fe80::1%eth0", wantErr: "zone"},
		{name: "4in6 single", flag: "a=::ffff:10.0.0.1", wantErr: "plain IPv4"},
		{name: "4in6 CIDR", flag: "a=::ffff:10.0.0.0/120", wantErr: "plain IPv4"},
		{name: "4in6 range", flag: "a=::ffff:10.0.0.1-::ffff:10.0.0.9", wantErr: "plain IPv4"},
		{name: "unknown option", flag: "a=10.0.0.0/24;avoid-buggy-ips=true", wantErr: `unknown option "avoid-buggy-ips"`},
		{name: "option without value", flag: "a=10.0.0.0/24;auto-assign", wantErr: "want OPTION=VALUE"},
		{name: "option with bad bool", flag: "a=10.0.0.0/24;auto-assign=maybe", wantErr: "true or false"},
		{name: "overlap within pool", flag: "a=10.0.0.0/24,10.0.0.100-10.0.1.5", wantErr: `pool "a": ranges 10.0.0.1-10.0.0.254 and 10.0.0.100-10.0.1.5 overlap`},
		{name: "duplicate range within pool", flag: "a=10.0.0.7,10.0.0.7", wantErr: "overlap"},
		{name: "v6 overlap within pool", flag: "a=2001:db8::/64,2001:db8::5", wantErr: "overlap"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParsePool(c.flag)
			if c.wantErr != "" {
				if err == nil {
					t.Fatalf("ParsePool(%q) = %+v, want error containing %q", c.flag, p, c.wantErr)
				}
				if !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %q does not contain %q", err, c.wantErr)
				}
				if !strings.Contains(err.Error(), `"`+c.flag+`"`) {
					t.Fatalf("error %q does not quote the value %q", err, c.flag)
				}
				if !errors.Is(err, ErrBadPool) {
					t.Fatalf("error %q does not wrap ErrBadPool", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePool(%q): %v", c.flag, err)
			}
			if p.Name != c.wantPool || p.AutoAssign != c.auto || p.IncludeNetworkBroadcast != c.inclNB || p.Spec != c.flag ||
				p.Interface != c.iface {
				t.Fatalf("got %+v, want name %q auto %v inclNB %v interface %q spec %q", p, c.wantPool, c.auto, c.inclNB, c.iface, c.flag)
			}
			if !slices.Equal(p.Ranges, c.want) {
				t.Fatalf("ranges %v, want %v", p.Ranges, c.want)
			}
		})
	}
}

func TestParsePools(t *testing.T) {
	cases := []struct {
		name      string
		flags     []string
		wantNames []string
		wantErr   string
	}{
		{name: "none", flags: nil, wantNames: []string{}},
		{name: "sorted by name", flags: []string{"zeta=10.0.2.0/24", "alpha=10.0.1.0/24", "mid=2001:db8::/112"}, wantNames: []string{"alpha", "mid", "zeta"}},
		{name: "adjacent ranges are fine", flags: []string{"a=10.0.0.0-10.0.0.9", "b=10.0.0.10-10.0.0.20"}, wantNames: []string{"a", "b"}},
		{name: "v4 and v6 never overlap", flags: []string{"a=0.0.0.0/0", "b=::/0"}, wantNames: []string{"a", "b"}},
		{name: "skipped broadcast does not overlap the next pool", flags: []string{"a=10.0.0.0/24", "b=10.0.0.255"}, wantNames: []string{"a", "b"}},
		{name: "duplicate names", flags: []string{"a=10.0.0.0/24", "a=10.0.1.0/24"}, wantErr: `pool name "a" is used twice`},
		{name: "overlap across pools names both", flags: []string{"b=10.0.0.0/24", "a=10.0.0.128-10.0.0.130"}, wantErr: `pools "b" and "a" overlap: 10.0.0.1-10.0.0.254 and 10.0.0.128-10.0.0.130`},
		{name: "identical ranges", flags: []string{"a=10.0.0.5", "b=10.0.0.5"}, wantErr: `pools "a" and "b" overlap`},
		{name: "long range swallowing later ones", flags: []string{"a=10.0.0.0-10.0.9.255", "b=10.0.1.0/24", "c=10.0.5.7"}, wantErr: `pools "a" and "b" overlap`},
		{name: "overlap behind a short range", flags: []string{"a=10.0.0.0-10.0.9.255", "b=10.0.0.5", "c=10.0.5.7"}, wantErr: `pools "a" and "b" overlap`},
		{name: "v6 overlap", flags: []string{"x=2001:db8::/112", "y=2001:db8::ff00-2001:db8::1:0"}, wantErr: `pools "x" and "y" overlap`},
		{name: "bad member", flags: []string{"a=10.0.0.0/24", "b=nope"}, wantErr: `"b=nope"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pools, err := ParsePools(c.flags)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, c.wantErr)
				}
				if !errors.Is(err, ErrBadPool) {
					t.Fatalf("error %q does not wrap ErrBadPool", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			names := []string{}
			for _, p := range pools {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, c.wantNames) {
				t.Fatalf("names %v, want %v", names, c.wantNames)
			}
		})
	}
}

func TestValidatePools(t *testing.T) {
	good := Pool{Name: "a", Ranges: []Range{rng("10.0.0.1", "10.0.0.9")}}
	cases := []struct {
		name    string
		pools   []Pool
		wantErr string
	}{
		{name: "good", pools: []Pool{good}},
		{name: "bad name", pools: []Pool{{Name: "A", Ranges: good.Ranges}}, wantErr: "DNS label"},
		{name: "no ranges", pools: []Pool{{Name: "a"}}, wantErr: `pool "a" has no ranges`},
		{name: "zero range", pools: []Pool{{Name: "a", Ranges: []Range{{}}}}, wantErr: "malformed range"},
		{name: "reversed", pools: []Pool{{Name: "a", Ranges: []Range{rng("10.0.0.9", "10.0.0.1")}}}, wantErr: "malformed range"},
		{name: "mixed family", pools: []Pool{{Name: "a", Ranges: []Range{rng("10.0.0.1", "2001:db8::1")}}}, wantErr: "malformed range"},
		{name: "4in6", pools: []Pool{{Name: "a", Ranges: []Range{rng("::ffff:10.0.0.1", "::ffff:10.0.0.2")}}}, wantErr: "malformed range"},
		{name: "duplicate", pools: []Pool{good, good}, wantErr: "used twice"},
		{name: "overlap", pools: []Pool{good, {Name: "b", Ranges: []Range{rng("10.0.0.9", "10.0.0.9")}}}, wantErr: `pools "a" and "b" overlap`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidatePools(c.pools)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, ErrBadPool) {
				t.Fatalf("err = %v, want ErrBadPool containing %q", err, c.wantErr)
			}
		})
	}
}

func TestPoolContains(t *testing.T) {
	p, err := ParsePool("a=10.0.0.0/24,10.0.5.10-10.0.5.12,2001:db8::/126")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ip   string
		want bool
	}{
		{"10.0.0.0", false}, // network address, skipped
		{"10.0.0.1", true},
		{"10.0.0.254", true},
		{"10.0.0.255", false}, // broadcast, skipped
		{"10.0.1.1", false},
		{"10.0.5.9", false},
		{"10.0.5.10", true},
		{"10.0.5.12", true},
		{"10.0.5.13", false},
		{"2001:db8::", false}, // subnet-router anycast, skipped
		{"2001:db8::1", true},
		{"2001:db8::3", true},
		{"2001:db8::4", false},
		{"::ffff:10.0.0.1", false}, // 4in6 is IPv6, never equal to the IPv4 range
	}
	for _, c := range cases {
		if got := p.Contains(addr(c.ip)); got != c.want {
			t.Errorf("Contains(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
	if p.Contains(netip.Addr{}) {
		t.Error("Contains(zero Addr) = true")
	}
}

func TestPoolFamiliesAndSize(t *testing.T) {
	cases := []struct {
		flag         string
		v4, v6       bool
		size4, size6 uint64
	}{
		{flag: "a=10.0.0.0/24", v4: true, size4: 254},
		{flag: "a=10.0.0.0/24;include-network-broadcast=true", v4: true, size4: 256},
		{flag: "a=10.0.0.0/16", v4: true, size4: 65534},
		{flag: "a=0.0.0.0/0;include-network-broadcast=true", v4: true, size4: 1 << 32},
		{flag: "a=2001:db8::/112", v6: true, size6: 65535},
		{flag: "a=2001:db8::/112;include-network-broadcast=true", v6: true, size6: 65536},
		{flag: "a=10.0.0.1-10.0.0.3,10.0.1.7,2001:db8::/120", v4: true, v6: true, size4: 4, size6: 255},
		{flag: "a=2001:db8::/65", v6: true, size6: 1<<63 - 1},
		{flag: "a=2001:db8::/64", v6: true, size6: math.MaxUint64},
		{flag: "a=2001:db8::/64,2001:db9::/65", v6: true, size6: math.MaxUint64},
		{flag: "a=::/0", v6: true, size6: math.MaxUint64},
		{flag: "a=2001:db8::ffff:ffff:ffff:ffff-2001:db8:0:1::", v6: true, size6: 2},
	}
	for _, c := range cases {
		p, err := ParsePool(c.flag)
		if err != nil {
			t.Fatal(err)
		}
		v4, v6 := p.Families()
		s4, s6 := p.Size()
		if v4 != c.v4 || v6 != c.v6 || s4 != c.size4 || s6 != c.size6 {
			t.Errorf("%s: families (%v,%v) size (%d,%d), want (%v,%v) (%d,%d)", c.flag, v4, v6, s4, s6, c.v4, c.v6, c.size4, c.size6)
		}
	}
}

func TestRangeString(t *testing.T) {
	if got := rng("10.0.0.1", "10.0.0.1").String(); got != "10.0.0.1" {
		t.Errorf("single = %q", got)
	}
	if got := rng("2001:db8::1", "2001:db8::9").String(); got != "2001:db8::1-2001:db8::9" {
		t.Errorf("span = %q", got)
	}
	// What String prints parses back to the same range.
	r := rng("10.0.0.3", "10.0.0.9")
	p, err := ParsePool("a=" + r.String())
	if err != nil || !slices.Equal(p.Ranges, []Range{r}) {
		t.Errorf("round trip: %v %v", p.Ranges, err)
	}
}
