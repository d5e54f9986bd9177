package ipam

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzParsePool: any input either parses into a pool that validates, whose ranges
// print back to themselves, or fails with ErrBadPool quoting the input. Never a panic.
func FuzzParsePool(f *testing.F) {
	for _, s := range []string{
		"a=10.0.0.0/24", "a=10.0.0.0/24;include-network-broadcast=true;auto-assign=false",
		"dual=10.0.0.1-10.0.0.9,2001:db8::/120", "a=2001:db8::1-2001:db8::1", "a=0.0.0.0/0", "a=::/0",
		"a=10.0.0.0/31", "a=10.0.0.0/33", "a=10.0.0.5/24", "a=10.0.0.9-10.0.0.1", "a=,", "=", "a=b=c",
		"a=10.0.0.1;", "a=fe80::1%eth0", "a=::ffff:1.2.3.4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePool(s)
		if err != nil {
			if !errors.Is(err, ErrBadPool) || !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("error %q: not ErrBadPool quoting the input", err)
			}
			return
		}
		if err := ValidatePools([]Pool{p}); err != nil {
			t.Fatalf("parsed pool does not validate: %v", err)
		}
		if p.Spec != s {
			t.Fatalf("Spec %q, input %q", p.Spec, s)
		}
		for _, r := range p.Ranges {
			if !p.Contains(r.First) || !p.Contains(r.Last) {
				t.Fatalf("pool does not contain its range ends %v", r)
			}
			back, err := ParsePool("x=" + r.String())
			if err != nil || !slices.Equal(back.Ranges, []Range{r}) {
				t.Fatalf("range %v prints as %q which parses to %v (%v)", r, r.String(), back.Ranges, err)
			}
		}
	})
}
