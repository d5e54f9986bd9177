package raftstore

// A planned move of a service VIP has two phases so that no two nodes speak for
// it at once. The leader commits ReleaseOwner: the owner stays recorded but must
// stop announcing. The owner takes the address off its interface and forwards
// AckRelease about itself. Only then (or once the owner's kernel lease must have
// run out) does the leader commit SetOwner for the new node, which clears both
// marks. A move away from a node that is down skips the first phase: its lease
// ran out before the leader could call it down.

// ReleaseOwner (leader only) asks the current owner of VIP to stop announcing
// it. The owner and epoch stay; a VIP without owner is left alone.
type ReleaseOwner struct {
	VIP string `json:"vip"`
}

// AckRelease is Node's confirmation that it no longer holds VIP, for the release
// of the owner record at Epoch. It changes nothing unless Node still owns VIP at
// Epoch with a release pending, so a late or repeated ack is harmless. Nodes may
// forward it about themselves only.
type AckRelease struct {
	VIP   string `json:"vip"`
	Node  string `json:"node"`
	Epoch uint64 `json:"epoch"`
}

// Type implements Command.
func (ReleaseOwner) Type() CommandType { return TypeReleaseOwner }

// Type implements Command.
func (AckRelease) Type() CommandType { return TypeAckRelease }

func (c ReleaseOwner) validate() error {
	if err := validateIP(c.VIP); err != nil {
		return invalid(c.Type(), "%v", err)
	}
	return nil
}

func (c ReleaseOwner) apply(s *State) {
	o, ok := s.Owners[c.VIP]
	if !ok {
		return
	}
	o.Releasing = true
	s.Owners[c.VIP] = o
}

func (c AckRelease) validate() error {
	if err := validateIP(c.VIP); err != nil {
		return invalid(c.Type(), "%v", err)
	}
	if c.Node == "" {
		return invalid(c.Type(), "vip %s: empty node", c.VIP)
	}
	return nil
}

func (c AckRelease) apply(s *State) {
	o, ok := s.Owners[c.VIP]
	if !ok || o.Node != c.Node || o.Epoch != c.Epoch || !o.Releasing {
		return
	}
	o.Released = true
	s.Owners[c.VIP] = o
}
