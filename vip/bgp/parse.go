package bgp

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Peer is one router the Speaker keeps a session with. The zero values of
// the optional fields mean the defaults described in the package doc.
type Peer struct {
	// Address is the router's address; it also selects the session's transport family.
	Address netip.Addr
	// AS is the router's AS number; equal to Config.AS makes the session iBGP.
	AS uint32
	// Port is the router's TCP port; 0 means 179.
	Port uint16
	// Password is the TCP MD5 signature key; empty means none.
	Password string
	// Multihop is the eBGP multihop TTL; 0 means directly connected.
	Multihop uint8
	// HoldTime is the proposed hold time in whole seconds; 0 means 90s.
	HoldTime time.Duration
}

// Hold-time bounds from RFC 4271 (a hold time is 0 or at least 3 seconds, in
// a 16-bit field); 0 is not accepted because it turns failure detection off.
const (
	minHoldTime = 3 * time.Second
	maxHoldTime = math.MaxUint16 * time.Second
)

// ParsePeer parses the --bgp-peer syntax ADDRESS,AS[,port=N][,password=S]
// [,multihop=N][,hold=DURATION]. Errors quote the offending value.
func ParsePeer(s string) (Peer, error) {
	var p Peer
	fields := strings.Split(s, ",")
	if len(fields) < 2 {
		return p, fmt.Errorf("bgp peer %q: want ADDRESS,AS[,option=value...]", s)
	}
	addr, err := netip.ParseAddr(strings.TrimSpace(fields[0]))
	if err != nil || addr.Zone() != "" {
		return p, fmt.Errorf("bgp peer %q: bad address %q", s, fields[0])
	}
	p.Address = addr.Unmap()
	if p.AS, err = ParseAS(strings.TrimSpace(fields[1])); err != nil {
		return p, fmt.Errorf("bgp peer %q: %w", s, err)
	}
	seen := map[string]bool{}
	for _, f := range fields[2:] {
		key, val, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			return p, fmt.Errorf("bgp peer %q: option %q is not key=value", s, f)
		}
		if seen[key] {
			return p, fmt.Errorf("bgp peer %q: option %q given twice", s, key)
		}
		seen[key] = true
		if err := p.setOption(key, val); err != nil {
			return p, fmt.Errorf("bgp peer %q: %w", s, err)
		}
	}
	return p, nil
}

// setOption applies one key=value option of the peer syntax.
func (p *Peer) setOption(key, val string) error {
	switch key {
	case "port":
		n, err := strconv.ParseUint(val, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("bad port %q: want 1..65535", val)
		}
		p.Port = uint16(n)
	case "password":
		if val == "" {
			return errors.New("empty password")
		}
		p.Password = val
	case "multihop":
		n, err := strconv.ParseUint(val, 10, 8)
		if err != nil || n == 0 {
			return fmt.Errorf("bad multihop TTL %q: want 1..255", val)
		}
		p.Multihop = uint8(n)
	case "hold":
		d, err := time.ParseDuration(val)
		if err != nil {
			return fmt.Errorf("bad hold duration %q: %w", val, err)
		}
		if err := checkHoldTime(d); err != nil {
			return fmt.Errorf("bad hold duration %q: %w", val, err)
		}
		p.HoldTime = d
	default:
		return fmt.Errorf("unknown option %q (want port, password, multihop or hold)", key)
	}
	return nil
}

// checkHoldTime accepts what a BGP OPEN can carry: whole seconds, 3s..65535s.
func checkHoldTime(d time.Duration) error {
	if d%time.Second != 0 {
		return errors.New("want whole seconds")
	}
	if d < minHoldTime || d > maxHoldTime {
		return fmt.Errorf("want %v..%v", minHoldTime, maxHoldTime)
	}
	return nil
}

// ParseAS parses a 4-byte AS number (--bgp-as, and the AS of --bgp-peer):
// 1..4294967295, AS 0 being reserved (RFC 7607). Errors quote the value.
func ParseAS(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad AS %q: not a number", s)
	}
	if n == 0 || n > math.MaxUint32 {
		return 0, fmt.Errorf("AS %q out of range: want 1..%d", s, uint32(math.MaxUint32))
	}
	return uint32(n), nil
}

// PathAttrs are the optional attributes a pool puts on its VIPs' paths.
type PathAttrs struct {
	// Communities are standard communities, "ASN:VALUE" or a well-known name.
	Communities []string
	// LocalPref is LOCAL_PREF for iBGP peers; 0 means none is sent.
	LocalPref uint32
}

// wellKnown are the community names ParsePathAttrs accepts besides ASN:VALUE.
var wellKnown = map[string]uint32{
	"no-export":           0xffffff01,
	"no-advertise":        0xffffff02,
	"no-export-subconfed": 0xffffff03,
}

// ParsePathAttrs parses the pool option syntax
// community=C[,community=C...][,local-pref=N]; the empty string gives no
// attributes. Communities come back in canonical form, duplicates removed.
func ParsePathAttrs(s string) (PathAttrs, error) {
	var a PathAttrs
	if strings.TrimSpace(s) == "" {
		return a, nil
	}
	for f := range strings.SplitSeq(s, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			return a, fmt.Errorf("bgp pool options %q: option %q is not key=value", s, f)
		}
		switch key {
		case "community":
			c, err := parseCommunity(val)
			if err != nil {
				return a, fmt.Errorf("bgp pool options %q: %w", s, err)
			}
			if name := formatCommunity(c); !slices.Contains(a.Communities, name) {
				a.Communities = append(a.Communities, name)
			}
		case "local-pref":
			if a.LocalPref != 0 {
				return a, fmt.Errorf("bgp pool options %q: local-pref given twice", s)
			}
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil || n == 0 {
				return a, fmt.Errorf("bgp pool options %q: bad local-pref %q: want 1..%d", s, val, uint32(math.MaxUint32))
			}
			a.LocalPref = uint32(n)
		default:
			return a, fmt.Errorf("bgp pool options %q: unknown option %q (want community or local-pref)", s, key)
		}
	}
	return a, nil
}

// parseCommunity turns "ASN:VALUE" or a well-known name into its 32-bit value.
func parseCommunity(s string) (uint32, error) {
	if v, ok := wellKnown[s]; ok {
		return v, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("bad community %q: want ASN:VALUE or no-export, no-advertise, no-export-subconfed", s)
	}
	h, err1 := strconv.ParseUint(hi, 10, 16)
	l, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad community %q: both halves must be 0..65535", s)
	}
	return uint32(h)<<16 | uint32(l), nil
}

// formatCommunity is the canonical text of a community value.
func formatCommunity(c uint32) string {
	for name, v := range wellKnown {
		if v == c {
			return name
		}
	}
	return strconv.FormatUint(uint64(c>>16), 10) + ":" + strconv.FormatUint(uint64(c&0xffff), 10)
}
