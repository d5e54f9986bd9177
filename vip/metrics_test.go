package vip

import (
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestHeldGaugePerInterface: two holders (two pool interfaces) each publish
// their own count; one holder's update does not overwrite the other's, and a
// dropped holder's series are gone.
func TestHeldGaugePerInterface(t *testing.T) {
	a := fakeHolder(t, &countingSender{}, netip.MustParseAddr("198.51.100.100"), netip.MustParseAddr("198.51.100.101"), netip.MustParseAddr("2001:db8:100::100"))
	b := fakeHolder(t, &countingSender{}, netip.MustParseAddr("198.51.100.200"))
	a.iface, b.iface = "test-a", "test-b"
	a.updateGauge()
	b.updateGauge()
	for _, c := range []struct {
		iface, family string
		want          float64
	}{
		{"test-a", "ipv4", 2},
		{"test-a", "ipv6", 1},
		{"test-b", "ipv4", 1},
		{"test-b", "ipv6", 0},
	} {
		if got := testutil.ToFloat64(held.WithLabelValues(c.iface, c.family)); got != c.want {
			t.Errorf("held{interface=%q,family=%q} = %v, want %v", c.iface, c.family, got, c.want)
		}
	}
	before := testutil.CollectAndCount(held)
	b.dropGauge()
	if got := testutil.CollectAndCount(held); got != before-2 {
		t.Errorf("series after dropping test-b: %d, want %d", got, before-2)
	}
	if got := testutil.ToFloat64(held.WithLabelValues("test-a", "ipv4")); got != 2 {
		t.Errorf("test-a's count changed to %v when test-b was dropped", got)
	}
	a.dropGauge()
}
