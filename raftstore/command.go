package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strings"
)

// FormatVersion is the first byte of every encoded command. A node refuses
// entries of any other version instead of guessing at their meaning.
const FormatVersion byte = 1

// CommandType is the second byte of an encoded command. Values are explicit
// and never reused, because they are stored in the Raft log forever.
type CommandType uint8

// Command types. Add new ones at the end with a new number; never renumber.
const (
	TypeSetPools    CommandType = 1
	TypeAllocate    CommandType = 2
	TypeRelease     CommandType = 3
	TypeSetOwner    CommandType = 4
	TypeRemoveOwner CommandType = 5
	TypeReportNode  CommandType = 6
	TypeRemoveNode  CommandType = 7
	TypeBatch       CommandType = 8
	TypeAdvertisers CommandType = 9
	TypeLBClass     CommandType = 10
	// TypeReleaseOwner and TypeAckRelease are the two-phase planned move
	// (release.go).
	TypeReleaseOwner CommandType = 11
	TypeAckRelease   CommandType = 12
	// TypeClusterID commits the cluster's ID (clusterid.go).
	TypeClusterID CommandType = 13
)

// String names the type in errors and logs.
func (t CommandType) String() string {
	switch t {
	case TypeSetPools:
		return "set_pools"
	case TypeAllocate:
		return "allocate"
	case TypeRelease:
		return "release"
	case TypeSetOwner:
		return "set_owner"
	case TypeRemoveOwner:
		return "remove_owner"
	case TypeReportNode:
		return "report_node"
	case TypeRemoveNode:
		return "remove_node"
	case TypeBatch:
		return "batch"
	case TypeAdvertisers:
		return "set_advertisers"
	case TypeLBClass:
		return "set_lb_class"
	case TypeReleaseOwner:
		return "release_owner"
	case TypeAckRelease:
		return "ack_release"
	case TypeClusterID:
		return "set_cluster_id"
	}
	return fmt.Sprintf("unknown(%d)", uint8(t))
}

// ErrInvalidCommand marks a command that cannot be encoded, decoded or
// applied. The FSM returns such errors as the Apply response, so the leader
// sees them; they are deterministic, so every node rejects the same entries.
var ErrInvalidCommand = errors.New("invalid command")

// ErrUnknownCommand marks an entry written by a newer release: an unknown
// format version, command type or field. Unlike an invalid command it is not
// rejected the same way everywhere (the writer could decode it), so the FSM
// halts on it instead of applying on (halt.go).
var ErrUnknownCommand = errors.New("written by a newer release")

// Command is a change to the replicated State. Only the types in this file
// implement it usefully; Encode rejects anything else.
type Command interface {
	Type() CommandType
}

// SetPools replaces the committed pool set with Pools.
type SetPools struct {
	Pools []Pool `json:"pools"`
}

// Allocate upserts an allocation, keyed by Allocation.Service.
type Allocate struct {
	Allocation Allocation `json:"allocation"`
}

// Release removes the allocation of Service. It does not touch owners: the
// leader removes a released VIP's owner in the same Batch.
type Release struct {
	Service string `json:"service"`
}

// SetOwner makes Node the announcer of VIP. The FSM sets the epoch to the
// VIP's previous epoch plus one (one when the VIP had no owner).
type SetOwner struct {
	VIP     string `json:"vip"`
	Node    string `json:"node"`
	Service string `json:"service,omitempty"`
}

// RemoveOwner stops anyone from announcing VIP.
type RemoveOwner struct {
	VIP string `json:"vip"`
}

// ReportNode upserts a node's self-report. A report with APIServerHealthy
// also sets State.APIServerEverHealthy, which never goes back to false.
type ReportNode struct {
	Node NodeInfo `json:"node"`
}

// RemoveNode forgets a node's report.
type RemoveNode struct {
	Name string `json:"name"`
}

// Batch applies Commands atomically and in order: either every command is
// valid and all apply, or none does. Batches do not nest.
type Batch struct {
	Commands []Command
}

// Type implements Command.
func (SetPools) Type() CommandType { return TypeSetPools }

// Type implements Command.
func (Allocate) Type() CommandType { return TypeAllocate }

// Type implements Command.
func (Release) Type() CommandType { return TypeRelease }

// Type implements Command.
func (SetOwner) Type() CommandType { return TypeSetOwner }

// Type implements Command.
func (RemoveOwner) Type() CommandType { return TypeRemoveOwner }

// Type implements Command.
func (ReportNode) Type() CommandType { return TypeReportNode }

// Type implements Command.
func (RemoveNode) Type() CommandType { return TypeRemoveNode }

// Type implements Command.
func (Batch) Type() CommandType { return TypeBatch }

// op is what every known command implements: a stateless check, so a command
// is rejected before it changes anything, and its effect on the state.
type op interface {
	Command
	validate() error
	apply(s *State)
}

// batchItem is one command inside an encoded Batch body.
type batchItem struct {
	Type CommandType     `json:"type"`
	Body json.RawMessage `json:"body"`
}

type batchBody struct {
	Commands []batchItem `json:"commands"`
}

// Encode turns a valid command into log bytes: version, type, JSON body.
func Encode(c Command) ([]byte, error) {
	o, err := asOp(c)
	if err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	body, err := encodeBody(o)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", o.Type(), err)
	}
	return append([]byte{FormatVersion, byte(o.Type())}, body...), nil
}

func asOp(c Command) (op, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: nil command", ErrInvalidCommand)
	}
	if v := reflect.ValueOf(c); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("%w: nil %T", ErrInvalidCommand, c)
	}
	o, ok := c.(op)
	if !ok {
		return nil, fmt.Errorf("%w: unsupported command %T", ErrInvalidCommand, c)
	}
	return o, nil
}

func encodeBody(o op) ([]byte, error) {
	b, ok := o.(Batch)
	if !ok {
		if p, isPtr := o.(*Batch); isPtr {
			b, ok = *p, true
		}
	}
	if !ok {
		return json.Marshal(o)
	}
	items := make([]batchItem, len(b.Commands))
	for i, c := range b.Commands {
		body, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("command %d (%s): %w", i, c.Type(), err)
		}
		items[i] = batchItem{Type: c.Type(), Body: body}
	}
	return json.Marshal(batchBody{Commands: items})
}

// Decode parses log bytes written by Encode. Unknown versions, unknown types,
// malformed or unknown-field bodies and invalid commands are errors that name
// what was wrong. Decoded commands are canonical (empty slices are nil), so
// Encode(Decode(b)) decodes to the same command.
func Decode(b []byte) (Command, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes, need at least a version and a type byte", ErrInvalidCommand, len(b))
	}
	if b[0] != FormatVersion {
		return nil, fmt.Errorf("%w: %w: unknown format version %d (this node understands %d)", ErrInvalidCommand, ErrUnknownCommand, b[0], FormatVersion)
	}
	o, err := decodeTyped(CommandType(b[1]), b[2:], true)
	if err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o, nil
}

func decodeTyped(t CommandType, body []byte, allowBatch bool) (op, error) {
	var o op
	var err error
	switch t {
	case TypeSetPools:
		var c SetPools
		err = strictJSON(body, &c)
		c.Pools = clonePools(c.Pools)
		o = c
	case TypeAllocate:
		var c Allocate
		err = strictJSON(body, &c)
		c.Allocation = c.Allocation.clone()
		o = c
	case TypeRelease:
		var c Release
		err = strictJSON(body, &c)
		o = c
	case TypeSetOwner:
		var c SetOwner
		err = strictJSON(body, &c)
		o = c
	case TypeRemoveOwner:
		var c RemoveOwner
		err = strictJSON(body, &c)
		o = c
	case TypeReportNode:
		var c ReportNode
		err = strictJSON(body, &c)
		c.Node = c.Node.clone()
		o = c
	case TypeRemoveNode:
		var c RemoveNode
		err = strictJSON(body, &c)
		o = c
	case TypeAdvertisers:
		var c SetAdvertisers
		err = strictJSON(body, &c)
		c.Nodes = cloneStrings(c.Nodes)
		o = c
	case TypeLBClass:
		var c SetLBClass
		err = strictJSON(body, &c)
		o = c
	case TypeReleaseOwner:
		var c ReleaseOwner
		err = strictJSON(body, &c)
		o = c
	case TypeAckRelease:
		var c AckRelease
		err = strictJSON(body, &c)
		o = c
	case TypeClusterID:
		var c SetClusterID
		err = strictJSON(body, &c)
		o = c
	case TypeBatch:
		if !allowBatch {
			return nil, fmt.Errorf("%w: batch inside a batch", ErrInvalidCommand)
		}
		o, err = decodeBatch(body)
	default:
		return nil, fmt.Errorf("%w: %w: unknown command type %d", ErrInvalidCommand, ErrUnknownCommand, uint8(t))
	}
	if err != nil && (errors.Is(err, ErrUnknownCommand) || strings.HasPrefix(err.Error(), "json: unknown field")) {
		return nil, fmt.Errorf("%w: %w: %s body: %v", ErrInvalidCommand, ErrUnknownCommand, t, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s body: %v", ErrInvalidCommand, t, err)
	}
	return o, nil
}

func decodeBatch(body []byte) (op, error) {
	var bb batchBody
	if err := strictJSON(body, &bb); err != nil {
		return nil, err
	}
	b := Batch{Commands: make([]Command, 0, len(bb.Commands))}
	for i, it := range bb.Commands {
		c, err := decodeTyped(it.Type, it.Body, false)
		if err != nil {
			return nil, fmt.Errorf("command %d: %w", i, err)
		}
		b.Commands = append(b.Commands, c)
	}
	return b, nil
}

// strictJSON decodes exactly one JSON object with no unknown fields and no
// trailing data: a field this node does not know means a newer writer, and
// silently dropping it would make nodes disagree.
func strictJSON(body []byte, v any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON object")
	}
	return nil
}

func invalid(t CommandType, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidCommand, t, fmt.Sprintf(format, args...))
}

func (c SetPools) validate() error {
	seen := make(map[string]bool, len(c.Pools))
	for i, p := range c.Pools {
		if err := validatePool(p); err != nil {
			return invalid(c.Type(), "pool %d: %v", i, err)
		}
		if seen[p.Name] {
			return invalid(c.Type(), "pool %q listed twice", p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

func validatePool(p Pool) error {
	if p.Name == "" {
		return errors.New("empty name")
	}
	for j, r := range p.Ranges {
		if strings.TrimSpace(r) == "" {
			return fmt.Errorf("pool %q: range %d is empty", p.Name, j)
		}
	}
	return nil
}

func (c SetPools) apply(s *State) {
	s.Pools = make(map[string]Pool, len(c.Pools))
	for _, p := range c.Pools {
		s.Pools[p.Name] = p.clone()
	}
}

func (c Allocate) validate() error {
	a := c.Allocation
	if err := validateServiceKey(a.Service); err != nil {
		return invalid(c.Type(), "%v", err)
	}
	if a.Pool == "" {
		return invalid(c.Type(), "service %q: empty pool", a.Service)
	}
	seen := make(map[string]bool, len(a.IPs))
	for _, ip := range a.IPs {
		if err := validateIP(ip); err != nil {
			return invalid(c.Type(), "service %q: %v", a.Service, err)
		}
		if seen[ip] {
			return invalid(c.Type(), "service %q: ip %q listed twice", a.Service, ip)
		}
		seen[ip] = true
	}
	for _, p := range a.Ports {
		if p == "" {
			return invalid(c.Type(), "service %q: empty port", a.Service)
		}
	}
	return nil
}

func (c Allocate) apply(s *State) {
	s.Allocations[c.Allocation.Service] = c.Allocation.clone()
}

func (c Release) validate() error {
	if err := validateServiceKey(c.Service); err != nil {
		return invalid(c.Type(), "%v", err)
	}
	return nil
}

func (c Release) apply(s *State) { delete(s.Allocations, c.Service) }

func (c SetOwner) validate() error {
	if err := validateIP(c.VIP); err != nil {
		return invalid(c.Type(), "%v", err)
	}
	if c.Node == "" {
		return invalid(c.Type(), "vip %s: empty node", c.VIP)
	}
	return nil
}

func (c SetOwner) apply(s *State) {
	epoch := max(s.Owners[c.VIP].Epoch, s.Epochs[c.VIP]) + 1
	s.Owners[c.VIP] = Owner{VIP: c.VIP, Node: c.Node, Epoch: epoch, Service: c.Service}
	s.Epochs[c.VIP] = epoch
}

func (c RemoveOwner) validate() error {
	if c.VIP == "" {
		return invalid(c.Type(), "empty vip")
	}
	return nil
}

func (c RemoveOwner) apply(s *State) { delete(s.Owners, c.VIP) }

func (c ReportNode) validate() error {
	n := c.Node
	if n.Name == "" {
		return invalid(c.Type(), "empty node name")
	}
	if n.Role != RoleVoter && n.Role != RoleNonvoter {
		return invalid(c.Type(), "node %q: role %q, want %q or %q", n.Name, n.Role, RoleVoter, RoleNonvoter)
	}
	for i, p := range n.Pools {
		if err := validatePool(p); err != nil {
			return invalid(c.Type(), "node %q: pool %d: %v", n.Name, i, err)
		}
	}
	seen := make(map[string]bool, len(n.Interfaces))
	for i, l := range n.Interfaces {
		if l.Name == "" {
			return invalid(c.Type(), "node %q: interface %d has no name", n.Name, i)
		}
		if seen[l.Name] {
			return invalid(c.Type(), "node %q: interface %q listed twice", n.Name, l.Name)
		}
		seen[l.Name] = true
	}
	return nil
}

func (c ReportNode) apply(s *State) {
	s.Nodes[c.Node.Name] = c.Node.clone()
	if c.Node.APIServerHealthy {
		s.APIServerEverHealthy = true
	}
}

func (c RemoveNode) validate() error {
	if c.Name == "" {
		return invalid(c.Type(), "empty node name")
	}
	return nil
}

func (c RemoveNode) apply(s *State) { delete(s.Nodes, c.Name) }

func (c Batch) validate() error {
	if len(c.Commands) == 0 {
		return invalid(c.Type(), "no commands")
	}
	for i, sub := range c.Commands {
		o, err := asOp(sub)
		if err != nil {
			return invalid(c.Type(), "command %d: %v", i, err)
		}
		if o.Type() == TypeBatch {
			return invalid(c.Type(), "command %d: batch inside a batch", i)
		}
		if err := o.validate(); err != nil {
			return fmt.Errorf("batch command %d: %w", i, err)
		}
	}
	return nil
}

// apply runs every command in order; validate has already accepted all of
// them, and applying a valid command cannot fail, so the batch is atomic.
func (c Batch) apply(s *State) {
	for _, sub := range c.Commands {
		sub.(op).apply(s)
	}
}

func validateServiceKey(key string) error {
	ns, name, ok := strings.Cut(key, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("service %q is not namespace/name", key)
	}
	return nil
}

// validateIP insists on the canonical text form, because VIPs are map keys:
// "2001:DB8::1" and "2001:db8::1" must not become two owners.
func validateIP(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("ip %q: %v", s, err)
	}
	if a.Zone() != "" {
		return fmt.Errorf("ip %q has a zone", s)
	}
	if a.String() != s {
		return fmt.Errorf("ip %q is not canonical (want %q)", s, a.String())
	}
	return nil
}
