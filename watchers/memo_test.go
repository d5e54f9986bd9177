package watchers

import "testing"

func TestMemoSkipsUnchanged(t *testing.T) {
	m := newMemo()
	if !m.changed("a", 1) {
		t.Fatal("never-seen key reported unchanged")
	}
	m.record("a", 1, m.token())
	if m.changed("a", 1) {
		t.Fatal("same hash reported changed")
	}
	if !m.changed("a", 2) {
		t.Fatal("new hash reported unchanged")
	}
	m.forget("a", m.token())
	if !m.changed("a", 1) {
		t.Fatal("forgotten key reported unchanged")
	}
}

func TestMemoInvalidate(t *testing.T) {
	m := newMemo()
	m.record("a", 1, m.token())
	m.record("b", 1, m.token())
	m.invalidate([]string{"a"})
	if !m.changed("a", 1) || m.changed("b", 1) {
		t.Fatal("invalidate(a) must force a and only a")
	}
	m.record("a", 1, m.token())
	if m.changed("a", 1) {
		t.Fatal("a recorded after its invalidation is still forced")
	}
	m.invalidateAll()
	if !m.changed("a", 1) || !m.changed("b", 1) {
		t.Fatal("invalidateAll must force every key")
	}
}

// An invalidation that lands while the worker is inside the handler must survive the
// worker recording the view it delivered before the invalidation.
func TestMemoInvalidationDuringHandler(t *testing.T) {
	for name, inval := range map[string]func(m *memo){
		"invalidate":    func(m *memo) { m.invalidate([]string{"a"}) },
		"invalidateAll": func(m *memo) { m.invalidateAll() },
	} {
		t.Run(name, func(t *testing.T) {
			m := newMemo()
			tok := m.token()
			inval(m) // concurrently, while the handler runs
			m.record("a", 1, tok)
			if !m.changed("a", 1) {
				t.Fatal("invalidation lost: the next pass would skip a")
			}
			m.record("a", 1, m.token())
			if m.changed("a", 1) {
				t.Fatal("still forced after a pass that started after the invalidation")
			}
			if len(m.invalid) != 0 {
				t.Fatalf("invalid map leaks: %v", m.invalid)
			}
		})
	}
}
