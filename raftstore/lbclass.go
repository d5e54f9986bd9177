package raftstore

import "strings"

// SetLBClass commits the loadBalancerClass the leader serves, so every leader
// serves the same Services whatever its own --lb-class says: a leader with a
// different flag must not release the allocations of the committed class. An
// empty Class is a value: Services without spec.loadBalancerClass.
type SetLBClass struct {
	Class string `json:"class"`
}

// Type implements Command.
func (SetLBClass) Type() CommandType { return TypeLBClass }

func (c SetLBClass) validate() error {
	if strings.TrimSpace(c.Class) != c.Class || len(c.Class) > 316 {
		return invalid(c.Type(), "class %q: surrounding spaces or longer than a qualified name", c.Class)
	}
	return nil
}

func (c SetLBClass) apply(s *State) {
	class := c.Class
	s.LBClass = &class
}

// cloneClass copies an optional class so callers never share the FSM's string
// pointer.
func cloneClass(p *string) *string {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}
