package lab

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// Claim is one packet seen on the wire in which a node says it has an address: an
// ARP reply or gratuitous ARP (IPv4), or a neighbour advertisement (IPv6).
type Claim struct {
	Line string
	MAC  string
}

var (
	arpReply = regexp.MustCompile(`^\S+ (\S+) > \S+, .*Reply (\S+) is-at (\S+),`)
	arpGrat  = regexp.MustCompile(`^\S+ (\S+) > \S+, .*Request who-has (\S+) tell (\S+),`)
	ndpAdv   = regexp.MustCompile(`^\S+ (\S+) > \S+, .*neighbor advertisement, tgt is (\S+?),`)
)

// Claims picks from `tcpdump -e` lines (Capture) every packet in which some node
// claims ip, in arrival order.
func Claims(lines []string, ip netip.Addr) []Claim {
	var out []Claim
	v := ip.String()
	for _, ln := range lines {
		if m := arpReply.FindStringSubmatch(ln); m != nil && m[2] == v {
			out = append(out, Claim{Line: ln, MAC: strings.ToLower(m[3])})
			continue
		}
		if m := arpGrat.FindStringSubmatch(ln); m != nil && m[2] == v && m[3] == v {
			out = append(out, Claim{Line: ln, MAC: strings.ToLower(m[1])})
			continue
		}
		if m := ndpAdv.FindStringSubmatch(ln); m != nil && m[2] == v {
			out = append(out, Claim{Line: ln, MAC: strings.ToLower(m[1])})
		}
	}
	return out
}

// SingleSpeaker returns the order in which MACs claimed an address, or an error when
// a MAC claims it again after another MAC started claiming it: ownership as seen by
// the client must move from one node to the next, never overlap or flap back.
func SingleSpeaker(cs []Claim) ([]string, error) {
	var order []string
	done := map[string]bool{}
	for _, c := range cs {
		if len(order) > 0 && order[len(order)-1] == c.MAC {
			continue
		}
		if done[c.MAC] {
			var b strings.Builder
			for _, x := range cs {
				b.WriteString("\n  " + x.Line)
			}
			return order, fmt.Errorf("%s claimed the address again after %s took it over: two nodes answered%s", c.MAC, order[len(order)-1], b.String())
		}
		if len(order) > 0 {
			done[order[len(order)-1]] = true
		}
		order = append(order, c.MAC)
	}
	return order, nil
}

// NeighIs checks the client's neighbour entry for ip without touching it.
func (l *Lab) NeighIs(ip netip.Addr, want net.HardwareAddr) error {
	mac, state, err := l.Neigh(l.client, ip)
	if err != nil {
		return err
	}
	if mac.String() != want.String() {
		return fmt.Errorf("client's neighbour entry for %s is %s (%s), want %s", ip, mac, state, want)
	}
	return nil
}
