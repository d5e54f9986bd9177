package daemon

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

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

// DeletedNodes implements serviceSource.
func (s *serviceController) DeletedNodes() map[string]time.Time {
	if w := s.w.Load(); w != nil {
		return w.DeletedNodes()
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

// reasonAdvertisers is the Event reason for a change in who advertises a Service's
// VIPs over BGP.
const reasonAdvertisers = "VIPAdvertisers"

// AdvertisersChanged implements serviceSource: one Normal Event on every Service
// whose VIPs' advertiser sets changed, naming each VIP's new and old set.
func (s *serviceController) AdvertisersChanged(changes []advertiserChange) {
	w, out := s.w.Load(), s.out.Load()
	if w == nil || out == nil {
		return
	}
	msgs := advertiserMessages(changes)
	for _, key := range slices.Sorted(maps.Keys(msgs)) {
		if v := w.View(key); v != nil {
			out.Event(watchers.ServiceRef{Namespace: v.Namespace, Name: v.Name, UID: v.UID}, false, reasonAdvertisers, msgs[key])
		}
	}
}

// advertiserMessages is the Event note for every Service the changes touch: one
// clause per VIP, in the changes' order, joined.
func advertiserMessages(changes []advertiserChange) map[string]string {
	parts := map[string][]string{}
	for _, c := range changes {
		msg := fmt.Sprintf("VIP %s advertised by %v (was %v)", c.VIP, c.To, c.From)
		if len(c.To) == 0 {
			msg = fmt.Sprintf("VIP %s is not advertised by any node (was %v)", c.VIP, c.From)
		}
		for _, key := range c.Services {
			parts[key] = append(parts[key], msg)
		}
	}
	out := make(map[string]string, len(parts))
	for key, p := range parts {
		out[key] = strings.Join(p, "; ")
	}
	return out
}
