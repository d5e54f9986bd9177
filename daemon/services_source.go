package daemon

import (
	"fmt"

	"github.com/raftvip/raftvip/daemon/assign"
	"github.com/raftvip/raftvip/watchers"
)

// The service controller as the leader's serviceSource: endpoint views for
// ownership decisions, and Events when owners change.

var _ serviceSource = (*serviceController)(nil)

// Ready implements serviceSource: true once the informer caches are complete.
func (s *serviceController) Ready() bool {
	w := s.w.Load()
	return w != nil && w.Synced()
}

// Endpoints implements serviceSource from the caches: who may announce each of our
// Services.
func (s *serviceController) Endpoints() map[string]endpointInfo {
	w := s.w.Load()
	if w == nil {
		return nil
	}
	out := map[string]endpointInfo{}
	for _, v := range w.Views() {
		out[v.Key] = endpointInfo{LocalTraffic: v.LocalTraffic, EndpointNodes: v.EndpointNodes, HasEndpoints: v.HasEndpoints}
	}
	return out
}

// ExcludedNodes implements serviceSource.
func (s *serviceController) ExcludedNodes() []string {
	if w := s.w.Load(); w != nil {
		return w.ExcludedNodes()
	}
	return nil
}

// OwnersChanged implements serviceSource: an Event on every Service whose VIP got a
// new announcer or lost its last one.
func (s *serviceController) OwnersChanged(ds []assign.Decision) {
	w, out := s.w.Load(), s.out.Load()
	if w == nil || out == nil {
		return
	}
	for _, d := range ds {
		if d.Reason == assign.ReasonServiceRemoved {
			continue
		}
		warning, msg := false, fmt.Sprintf("%s moved from %s to %s: %s", d.VIP, d.From, d.To, d.Reason)
		switch {
		case d.To == "":
			warning, msg = true, fmt.Sprintf("%s is not announced by any node: %s", d.VIP, d.Reason)
		case d.From == "":
			msg = fmt.Sprintf("%s announced by %s (%s)", d.VIP, d.To, d.Reason)
		}
		for _, key := range append([]string{d.Service}, d.SharedWith...) {
			if v := w.View(key); v != nil {
				out.Event(watchers.ServiceRef{Namespace: v.Namespace, Name: v.Name, UID: v.UID}, warning, watchers.ReasonAnnouncer, msg)
			}
		}
	}
}
