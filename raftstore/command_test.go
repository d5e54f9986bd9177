package raftstore

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// sampleCommands has one of every command type with every field set, so
// round-trip and fuzz seeds cover the whole encoding.
func sampleCommands() []Command {
	pools := []Pool{
		{Name: "default", Ranges: []string{"198.51.100.100-198.51.100.120", "2001:db8:100::/120"}, AutoAssign: true},
		{Name: "manual", Ranges: []string{"198.51.100.200/29"}, AvoidBuggyIPs: true, Interface: "eth0.20"},
	}
	alloc := Allocation{
		Service: "default/web", UID: "uid-1", Pool: "default",
		IPs: []string{"198.51.100.100", "2001:db8:100::1"}, SharingKey: "k", Ports: []string{"TCP/80", "UDP/53"},
	}
	node := NodeInfo{
		Name: "cp1", Address: "198.51.100.11:7950", Role: RoleVoter,
		APIServerHealthy: true, InterfaceUp: true, Draining: true, Pools: pools[:1],
		LBClass:    new(string),
		Interfaces: []LinkState{{Name: "eth0", Up: true, Default: true}, {Name: "eth0.20"}},
	}
	return []Command{
		SetPools{Pools: pools},
		Allocate{Allocation: alloc},
		Release{Service: "default/web"},
		SetOwner{VIP: "198.51.100.100", Node: "cp1", Service: "default/web"},
		RemoveOwner{VIP: "198.51.100.100"},
		ReportNode{Node: node},
		RemoveNode{Name: "cp1"},
		SetAdvertisers{VIP: "198.51.100.101", Nodes: []string{"cp2", "cp1"}},
		SetLBClass{Class: "example.com/raftvip"},
		ReleaseOwner{VIP: "198.51.100.100"},
		AckRelease{VIP: "198.51.100.100", Node: "cp1", Epoch: 3},
		SetClusterID{ID: "6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f1a7b64"},
		Batch{Commands: []Command{
			Allocate{Allocation: alloc},
			SetOwner{VIP: "2001:db8:100::1", Node: "cp2"},
			ReportNode{Node: NodeInfo{Name: "w1", Role: RoleNonvoter}},
		}},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	seen := map[CommandType]bool{}
	for _, c := range sampleCommands() {
		t.Run(c.Type().String(), func(t *testing.T) {
			b, err := Encode(c)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if b[0] != FormatVersion || CommandType(b[1]) != c.Type() {
				t.Fatalf("header = %d,%d, want %d,%d", b[0], b[1], FormatVersion, c.Type())
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, c)
			}
		})
		seen[c.Type()] = true
	}
	for typ := TypeSetPools; typ <= TypeClusterID; typ++ {
		if !seen[typ] {
			t.Errorf("sampleCommands lacks %s", typ)
		}
	}
}

func TestCommandTypeNumbersAreStable(t *testing.T) {
	// These numbers are in every stored log; changing one corrupts history.
	want := map[CommandType]uint8{
		TypeSetPools: 1, TypeAllocate: 2, TypeRelease: 3, TypeSetOwner: 4,
		TypeRemoveOwner: 5, TypeReportNode: 6, TypeRemoveNode: 7, TypeBatch: 8,
		TypeAdvertisers: 9, TypeLBClass: 10, TypeReleaseOwner: 11, TypeAckRelease: 12,
		TypeClusterID: 13,
	}
	for typ, n := range want {
		if uint8(typ) != n {
			t.Errorf("%s = %d, want %d", typ, uint8(typ), n)
		}
	}
	if FormatVersion != 1 {
		t.Errorf("FormatVersion = %d, want 1", FormatVersion)
	}
}

func TestEncodeAcceptsPointers(t *testing.T) {
	b, err := Encode(&Batch{Commands: []Command{&Release{Service: "a/b"}}})
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := Batch{Commands: []Command{Release{Service: "a/b"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
}

func TestDecodeCanonicalizesEmptySlices(t *testing.T) {
	b := append([]byte{FormatVersion, byte(TypeAllocate)},
		`{"allocation":{"service":"a/b","uid":"u","pool":"p","ips":[],"ports":[]}}`...)
	c, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	a := c.(Allocate).Allocation
	if a.IPs != nil || a.Ports != nil {
		t.Fatalf("empty slices not nil: %#v", a)
	}
}

type foreignCommand struct{}

func (foreignCommand) Type() CommandType { return 99 }

func TestEncodeRejects(t *testing.T) {
	var nilAlloc *Allocate
	cases := map[string]struct {
		cmd  Command
		want string
	}{
		"nil":                    {nil, "nil command"},
		"nil pointer":            {nilAlloc, "nil *raftstore.Allocate"},
		"foreign type":           {foreignCommand{}, "unsupported command"},
		"empty pool name":        {SetPools{Pools: []Pool{{Ranges: []string{"10.0.0.0/8"}}}}, "empty name"},
		"duplicate pool":         {SetPools{Pools: []Pool{{Name: "a"}, {Name: "a"}}}, `pool "a" listed twice`},
		"blank range":            {SetPools{Pools: []Pool{{Name: "a", Ranges: []string{" "}}}}, "range 0 is empty"},
		"service without ns":     {Allocate{Allocation: Allocation{Service: "web", Pool: "p"}}, "not namespace/name"},
		"service extra slash":    {Allocate{Allocation: Allocation{Service: "a/b/c", Pool: "p"}}, "not namespace/name"},
		"allocation no pool":     {Allocate{Allocation: Allocation{Service: "a/b"}}, "empty pool"},
		"bad ip":                 {Allocate{Allocation: Allocation{Service: "a/b", Pool: "p", IPs: []string{"300.1.1.1"}}}, `ip "300.1.1.1"`},
		"non-canonical ip":       {Allocate{Allocation: Allocation{Service: "a/b", Pool: "p", IPs: []string{"2001:DB8::1"}}}, "not canonical"},
		"duplicate ip":           {Allocate{Allocation: Allocation{Service: "a/b", Pool: "p", IPs: []string{"10.0.0.1", "10.0.0.1"}}}, "listed twice"},
		"empty port":             {Allocate{Allocation: Allocation{Service: "a/b", Pool: "p", Ports: []string{""}}}, "empty port"},
		"release bad key":        {Release{Service: ""}, "not namespace/name"},
		"owner zone ip":          {SetOwner{VIP: "fe80::1%eth0", Node: "n"}, "has a zone"},
		"owner no node":          {SetOwner{VIP: "10.0.0.1"}, "empty node"},
		"remove owner empty":     {RemoveOwner{}, "empty vip"},
		"report no name":         {ReportNode{Node: NodeInfo{Role: RoleVoter}}, "empty node name"},
		"report bad role":        {ReportNode{Node: NodeInfo{Name: "n", Role: "leader"}}, `role "leader"`},
		"report bad pool":        {ReportNode{Node: NodeInfo{Name: "n", Role: RoleVoter, Pools: []Pool{{}}}}, "empty name"},
		"remove node empty":      {RemoveNode{}, "empty node name"},
		"report unnamed link":    {ReportNode{Node: NodeInfo{Name: "n", Role: RoleVoter, Interfaces: []LinkState{{Up: true}}}}, "interface 0 has no name"},
		"report link twice":      {ReportNode{Node: NodeInfo{Name: "n", Role: RoleVoter, Interfaces: []LinkState{{Name: "e"}, {Name: "e"}}}}, `interface "e" listed twice`},
		"advertisers bad vip":    {SetAdvertisers{VIP: "198.51.100"}, "set_advertisers"},
		"advertisers empty node": {SetAdvertisers{VIP: "198.51.100.1", Nodes: []string{""}}, "node 0 is empty"},
		"lb class with spaces":   {SetLBClass{Class: " example.com/x"}, "set_lb_class"},
		"lb class too long":      {SetLBClass{Class: strings.Repeat("a", 317)}, "longer than a qualified name"},
		"empty cluster id":       {SetClusterID{}, "set_cluster_id: cluster id \"\""},
		"short cluster id":       {SetClusterID{ID: "6f1c2a9e-4b7d"}, "want 8-4-4-4-12 hex digits"},
		"cluster id not hex":     {SetClusterID{ID: "6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f1a7bzz"}, "lower-case hex"},
		"cluster id upper case":  {SetClusterID{ID: "6F1C2A9E-4B7D-4E0A-9C3B-2D5E8F1A7B64"}, "lower-case hex"},
		"empty batch":            {Batch{}, "no commands"},
		"nested batch":           {Batch{Commands: []Command{Batch{Commands: []Command{Release{Service: "a/b"}}}}}, "batch inside a batch"},
		"batch nil":              {Batch{Commands: []Command{nil}}, "nil command"},
		"batch invalid":          {Batch{Commands: []Command{Release{Service: "a/b"}, RemoveNode{}}}, "batch command 1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Encode(tc.cmd)
			if err == nil {
				t.Fatal("Encode accepted it")
			}
			if !errors.Is(err, ErrInvalidCommand) {
				t.Errorf("error %v does not wrap ErrInvalidCommand", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	raw := func(v byte, typ CommandType, body string) []byte {
		return append([]byte{v, byte(typ)}, body...)
	}
	nested, err := json.Marshal(batchBody{Commands: []batchItem{{Type: TypeBatch, Body: json.RawMessage(`{"commands":[]}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"empty":            {nil, "0 bytes"},
		"one byte":         {[]byte{1}, "1 bytes"},
		"unknown version":  {raw(2, TypeRelease, `{"service":"a/b"}`), "unknown format version 2"},
		"version zero":     {raw(0, TypeRelease, `{"service":"a/b"}`), "unknown format version 0"},
		"unknown type":     {raw(1, 200, `{}`), "unknown command type 200"},
		"type zero":        {raw(1, 0, `{}`), "unknown command type 0"},
		"not json":         {raw(1, TypeRelease, `nope`), "release body"},
		"json null":        {raw(1, TypeRelease, `null`), "not a JSON object"},
		"json array":       {raw(1, TypeSetPools, `[]`), "not a JSON object"},
		"unknown field":    {raw(1, TypeRelease, `{"service":"a/b","force":true}`), `unknown field "force"`},
		"trailing data":    {raw(1, TypeRelease, `{"service":"a/b"} {}`), "trailing data"},
		"wrong type":       {raw(1, TypeRelease, `{"service":7}`), "release body"},
		"invalid value":    {raw(1, TypeSetOwner, `{"vip":"x","node":"n"}`), `ip "x"`},
		"cluster id field": {raw(1, TypeClusterID, `{"id":"6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f1a7b64","name":"x"}`), `unknown field "name"`},
		"bad cluster id":   {raw(1, TypeClusterID, `{"id":"nope"}`), "set_cluster_id"},
		"nested batch":     {raw(1, TypeBatch, string(nested)), "batch inside a batch"},
		"batch bad item":   {raw(1, TypeBatch, `{"commands":[{"type":77,"body":{}}]}`), "command 0: invalid command: written by a newer release: unknown command type 77"},
		"empty batch":      {raw(1, TypeBatch, `{"commands":[]}`), "no commands"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := Decode(tc.b)
			if err == nil {
				t.Fatalf("Decode accepted it: %#v", c)
			}
			if !errors.Is(err, ErrInvalidCommand) {
				t.Errorf("error %v does not wrap ErrInvalidCommand", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestCommandTypeString(t *testing.T) {
	if got := TypeSetOwner.String(); got != "set_owner" {
		t.Errorf("TypeSetOwner = %q", got)
	}
	if got := CommandType(42).String(); got != "unknown(42)" {
		t.Errorf("CommandType(42) = %q", got)
	}
}

// FuzzDecode feeds arbitrary bytes to Decode. Whatever decodes must encode
// again and decode to the same command; nothing may panic.
func FuzzDecode(f *testing.F) {
	for _, c := range sampleCommands() {
		b, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{FormatVersion, byte(TypeBatch)})
	f.Add([]byte{2, byte(TypeRelease), '{', '}'})
	f.Add(append([]byte{FormatVersion, byte(TypeAllocate)}, `{"allocation":{"service":"a/b","pool":"p","ips":[],"ports":[]}}`...))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			if c != nil {
				t.Fatalf("Decode returned %#v with error %v", c, err)
			}
			return
		}
		again, err := Encode(c)
		if err != nil {
			t.Fatalf("Encode of decoded %#v: %v", c, err)
		}
		c2, err := Decode(again)
		if err != nil {
			t.Fatalf("Decode of re-encoded %q: %v", again, err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the command:\n first %#v\nsecond %#v", c, c2)
		}
	})
}

// TestDecodeBodiesWithoutInterfaces: a report and a pool set written by a node
// that predates per-pool interfaces decode, with no interface, so such entries in
// a log or from a node not yet upgraded keep working.
func TestDecodeBodiesWithoutInterfaces(t *testing.T) {
	report := append([]byte{FormatVersion, byte(TypeReportNode)},
		`{"node":{"name":"cp1","address":"a:1","role":"voter","apiserver_healthy":true,"interface_up":true,"draining":false}}`...)
	c, err := Decode(report)
	if err != nil {
		t.Fatalf("decode old report: %v", err)
	}
	if n := c.(ReportNode).Node; n.Interfaces != nil || !n.InterfaceUp {
		t.Fatalf("old report decoded as %+v, want no interfaces and interface_up", n)
	}
	pools := append([]byte{FormatVersion, byte(TypeSetPools)},
		`{"pools":[{"name":"p","ranges":["10.0.0.1"],"auto_assign":true,"avoid_buggy_ips":false}]}`...)
	c, err = Decode(pools)
	if err != nil {
		t.Fatalf("decode old pools: %v", err)
	}
	if p := c.(SetPools).Pools[0]; p.Interface != "" {
		t.Fatalf("old pool decoded with interface %q", p.Interface)
	}
	b, err := Encode(SetPools{Pools: []Pool{{Name: "p", Ranges: []string{"10.0.0.1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "interface") {
		t.Fatalf("a pool without interface is encoded with one: %s", b)
	}
}
