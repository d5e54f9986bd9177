package vip

import "net/netip"

// Entitled answers whether this node may speak for vip right now. The Holder
// asks it under its lock immediately before every announcement (the first burst,
// each follow-up, AnnounceAll), so a VIP the replicated state gave away, or whose
// lease ran out, between the decision to announce and the send is not announced.
// It must be quick and must not call back into the Holder.
type Entitled func(vip netip.Addr) bool

// SetEntitled installs the check every announcement makes; nil (the default)
// allows every held VIP within its lease.
func (h *Holder) SetEntitled(f Entitled) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.entitled = f
}

// announce sends one burst for the vips the entitlement check still allows and
// returns those; the others are logged and left out. h.mu must be held.
func (h *Holder) announce(vips []netip.Addr) ([]netip.Addr, error) {
	allowed := vips
	if h.entitled != nil {
		allowed = make([]netip.Addr, 0, len(vips))
		for _, v := range vips {
			if h.entitled(v) {
				allowed = append(allowed, v)
				continue
			}
			h.logger.Info("not announcing VIP: no longer entitled to it", "vip", v)
		}
	}
	if len(allowed) == 0 {
		return nil, nil
	}
	return allowed, h.ann.AnnounceBatch(allowed)
}
