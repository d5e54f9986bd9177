package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// FenceTable names the nftables tables (one in the arp family, one in inet)
// that hold the kernel-side lease. Nothing else of the host's ruleset is read
// or written.
const FenceTable = "raftvip"

// leaseGranularity is the unit of nftables element timeouts (milliseconds): a
// lease with less than one unit left is not written at all, since a timeout of
// zero would mean "never expires".
const leaseGranularity = time.Millisecond

// ARP hook numbers (NF_ARP_IN, NF_ARP_OUT); nftables' ChainHook constants
// carry the inet numbering, which differs.
const (
	arpHookIn  = 0
	arpHookOut = 1
)

// Lease is a VIP the node may hold and until when the kernel keeps treating it
// as live without a renewal. The daemon derives Until from the moment its
// entitlement was last confirmed plus the timeout that lets another node take
// the VIP over, so a frozen or killed agent goes silent before that happens.
// It is a point in time, not a duration: the kernel gets what is left of it
// when the element is written, so time spent between the decision and the
// write (a busy CPU, netlink work before it) never stretches the lease.
type Lease struct {
	VIP   netip.Addr
	Until time.Time
}

// Fence is the kernel-side lease on every held VIP. Two kinds of set live in
// its tables: "vips" lists every address the agent has put on the interface,
// "live" the ones whose lease is current, each element with a timeout. Rules
// drop, for an address in vips but not in live:
//   - ARP requests asking for it and ARP packets sent from it (arp family);
//   - IPv4 and IPv6 packets to and from it, Neighbor Solicitations asking for it
//     and Neighbor Advertisements for it (inet family).
//
// When the agent stops renewing (SIGKILL, SIGSTOP, a panic, a stall) the live
// elements time out in the kernel and the node stops answering for the VIP
// although the address is still on the interface. A Fence is not safe for
// concurrent use; the Holder serialises it.
type Fence struct {
	conn *nftables.Conn
	// table is the name of both tables: FenceTable, or a name of its own for
	// each further interface a node announces on (NewFenceTableAt).
	table string

	arp, inet        *nftables.Table
	arpVIPs, arpLive *nftables.Set
	vips4, live4     *nftables.Set
	vips6, live6     *nftables.Set
	lastVIPs         map[netip.Addr]bool
}

// NewFenceAt prepares a Fence for the network namespace ns, which the caller
// keeps open for the Fence's life. It changes nothing until Install.
func NewFenceAt(ns netns.NsHandle) (*Fence, error) {
	return NewFenceTableAt(ns, FenceTable)
}

// NewFenceTableAt is NewFenceAt with tables named table, so Holders of several
// interfaces in one namespace each keep a fence of their own: the rules match
// addresses only, and each table lists only its Holder's VIPs.
func NewFenceTableAt(ns netns.NsHandle, table string) (*Fence, error) {
	if table == "" {
		return nil, errors.New("kernel fence: empty table name")
	}
	conn, err := nftablesIn(ns, nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("kernel fence: nftables: %w", err)
	}
	return &Fence{conn: conn, table: table}, nil
}

// Leftover reports whether tables of an earlier run exist, for the daemon to
// log; Install replaces them either way.
func (f *Fence) Leftover() (bool, error) {
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyARP, nftables.TableFamilyINet} {
		ts, err := f.conn.ListTablesOfFamily(fam)
		if err != nil {
			return false, fmt.Errorf("kernel fence: list tables: %w", err)
		}
		for _, t := range ts {
			if t.Name == f.table {
				return true, nil
			}
		}
	}
	return false, nil
}

// Install replaces any tables left by an earlier run with empty ones, in one
// transaction. Call it after the stale addresses are gone: until then the old
// tables keep them silent.
func (f *Fence) Install() error {
	leftover, err := f.Leftover()
	if err != nil {
		return err
	}
	if leftover {
		f.delete()
	}
	f.arp = f.conn.AddTable(&nftables.Table{Family: nftables.TableFamilyARP, Name: f.table})
	f.inet = f.conn.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: f.table})
	sets := []struct {
		dst   **nftables.Set
		table *nftables.Table
		name  string
		typ   nftables.SetDatatype
		live  bool
	}{
		{&f.arpVIPs, f.arp, "vips4", nftables.TypeIPAddr, false},
		{&f.arpLive, f.arp, "live4", nftables.TypeIPAddr, true},
		{&f.vips4, f.inet, "vips4", nftables.TypeIPAddr, false},
		{&f.live4, f.inet, "live4", nftables.TypeIPAddr, true},
		{&f.vips6, f.inet, "vips6", nftables.TypeIP6Addr, false},
		{&f.live6, f.inet, "live6", nftables.TypeIP6Addr, true},
	}
	for _, s := range sets {
		set := &nftables.Set{Table: s.table, Name: s.name, KeyType: s.typ, HasTimeout: s.live}
		if err := f.conn.AddSet(set, nil); err != nil {
			return fmt.Errorf("kernel fence: set %s: %w", s.name, err)
		}
		*s.dst = set
	}
	f.addRules()
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("kernel fence: install tables %q: %w", f.table, err)
	}
	f.lastVIPs = map[netip.Addr]bool{}
	return nil
}

// addRules queues the drop rules; see Fence for what they match.
func (f *Fence) addRules() {
	arpIn := f.conn.AddChain(&nftables.Chain{Table: f.arp, Name: "input", Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookRef(arpHookIn), Priority: nftables.ChainPriorityFilter})
	arpOut := f.conn.AddChain(&nftables.Chain{Table: f.arp, Name: "output", Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookRef(arpHookOut), Priority: nftables.ChainPriorityFilter})
	in := f.conn.AddChain(&nftables.Chain{Table: f.inet, Name: "input", Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRaw})
	out := f.conn.AddChain(&nftables.Chain{Table: f.inet, Name: "output", Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRaw})

	// Ethernet/IPv4 ARP: hardware length 6, protocol length 4; sender IP at 14,
	// target IP at 24.
	ethIPv4 := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 4, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6, 4}},
	}
	f.rule(arpIn, ethIPv4, expr.PayloadBaseNetworkHeader, 24, 4, f.arpVIPs, f.arpLive)
	f.rule(arpOut, ethIPv4, expr.PayloadBaseNetworkHeader, 14, 4, f.arpVIPs, f.arpLive)

	ipv4 := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
	ipv6 := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
	}
	icmp6 := func(typ byte) []expr.Any {
		return append(append([]expr.Any{}, ipv6...),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typ}},
		)
	}
	const nbrSolicit, nbrAdvert = 135, 136
	// Destination and source addresses of IPv4 (16, 12) and IPv6 (24, 8); the
	// target of a Neighbor Solicitation or Advertisement sits 8 bytes into ICMPv6.
	f.rule(in, ipv4, expr.PayloadBaseNetworkHeader, 16, 4, f.vips4, f.live4)
	f.rule(in, ipv6, expr.PayloadBaseNetworkHeader, 24, 16, f.vips6, f.live6)
	f.rule(in, icmp6(nbrSolicit), expr.PayloadBaseTransportHeader, 8, 16, f.vips6, f.live6)
	f.rule(out, ipv4, expr.PayloadBaseNetworkHeader, 12, 4, f.vips4, f.live4)
	f.rule(out, ipv6, expr.PayloadBaseNetworkHeader, 8, 16, f.vips6, f.live6)
	f.rule(out, icmp6(nbrAdvert), expr.PayloadBaseTransportHeader, 8, 16, f.vips6, f.live6)
}

// rule drops packets matching match whose address at base+offset is in vips
// but not in live.
func (f *Fence) rule(c *nftables.Chain, match []expr.Any, base expr.PayloadBase, offset, length uint32, vips, live *nftables.Set) {
	exprs := append(append([]expr.Any{}, match...),
		&expr.Payload{DestRegister: 1, Base: base, Offset: offset, Len: length},
		&expr.Lookup{SourceRegister: 1, SetName: vips.Name, SetID: vips.ID},
		&expr.Lookup{SourceRegister: 1, SetName: live.Name, SetID: live.ID, Invert: true},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
	f.conn.AddRule(&nftables.Rule{Table: c.Table, Chain: c, Exprs: exprs})
}

// Write makes the kernel's sets match, in one transaction: vips lists every
// address in onInterface, and live every lease that has not ended, each
// expiring at its Until (what is left of it is measured last, right before the
// transaction is sent). The daemon calls it at every check, well within the
// shortest lease.
func (f *Fence) Write(onInterface []netip.Addr, leases []Lease) error {
	if f.arp == nil {
		return errors.New("kernel fence: not installed")
	}
	vips := make(map[netip.Addr]bool, len(onInterface))
	for _, a := range onInterface {
		vips[a] = true
	}
	if !mapsEqual(vips, f.lastVIPs) {
		var e4, e6 []nftables.SetElement
		for a := range vips {
			if a.Is4() {
				e4 = append(e4, nftables.SetElement{Key: a.AsSlice()})
			} else {
				e6 = append(e6, nftables.SetElement{Key: a.AsSlice()})
			}
		}
		if err := f.replace(e4, e6, f.arpVIPs, f.vips4, f.vips6); err != nil {
			return err
		}
	}
	var l4, l6 []nftables.SetElement
	for _, l := range leases {
		ttl := time.Until(l.Until).Truncate(leaseGranularity)
		if ttl < leaseGranularity {
			continue // ended: the VIP stays silent until a renewal
		}
		el := nftables.SetElement{Key: l.VIP.AsSlice(), Timeout: ttl}
		if l.VIP.Is4() {
			l4 = append(l4, el)
		} else {
			l6 = append(l6, el)
		}
	}
	if err := f.replace(l4, l6, f.arpLive, f.live4, f.live6); err != nil {
		return err
	}
	if err := f.conn.Flush(); err != nil {
		f.lastVIPs = nil
		return fmt.Errorf("kernel fence: renew %d leases: %w", len(leases), err)
	}
	f.lastVIPs = vips
	return nil
}

// replace queues flushing the three sets and filling them again: the arp
// table's IPv4 set, the inet table's IPv4 set and its IPv6 set.
func (f *Fence) replace(e4, e6 []nftables.SetElement, arp4, inet4, inet6 *nftables.Set) error {
	for _, s := range []struct {
		set *nftables.Set
		els []nftables.SetElement
	}{{arp4, e4}, {inet4, e4}, {inet6, e6}} {
		f.conn.FlushSet(s.set)
		if len(s.els) == 0 {
			continue
		}
		if err := f.conn.SetAddElements(s.set, s.els); err != nil {
			return fmt.Errorf("kernel fence: set %s: %w", s.set.Name, err)
		}
	}
	return nil
}

// Remove deletes the tables, for a graceful stop after the addresses are gone.
func (f *Fence) Remove() error {
	leftover, err := f.Leftover()
	if err != nil || !leftover {
		return err
	}
	f.delete()
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("kernel fence: remove tables %q: %w", f.table, err)
	}
	f.arp, f.inet = nil, nil
	return nil
}

// delete queues removing both tables; they must exist.
func (f *Fence) delete() {
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyARP, nftables.TableFamilyINet} {
		if ts, err := f.conn.ListTablesOfFamily(fam); err == nil {
			for _, t := range ts {
				if t.Name == f.table {
					f.conn.DelTable(t)
				}
			}
		}
	}
}

// Close releases the netlink socket; the kernel state stays.
func (f *Fence) Close() error {
	return f.conn.CloseLasting()
}

func mapsEqual(a, b map[netip.Addr]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
