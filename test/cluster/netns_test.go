package cluster

import (
	"errors"
	"net"
	"strconv"
	"testing"
)

func TestInNetNSEmptyRunsHere(t *testing.T) {
	ran := false
	want := errors.New("boom")
	if err := inNetNS("", func() error { ran = true; return want }); !errors.Is(err, want) || !ran {
		t.Fatalf("inNetNS(\"\") ran=%v err=%v", ran, err)
	}
}

func TestInNetNSMissingNamespace(t *testing.T) {
	ran := false
	if err := inNetNS("rvcp-does-not-exist", func() error { ran = true; return nil }); err == nil || ran {
		t.Fatalf("missing namespace: ran=%v err=%v", ran, err)
	}
}

// TestNetNSSockets shows sockets opened through inNetNS live in the lab
// namespace (its address binds there and not here), and that no thread is
// left behind in it.
func TestNetNSSockets(t *testing.T) {
	const labIP = "198.51.100.10"
	ns := newLabNetNS(t, labIP+"/24")
	if _, err := freePort("", labIP); err == nil {
		t.Fatalf("%s is bindable in the test's own namespace; the test cannot tell namespaces apart", labIP)
	}
	var l net.Listener
	if err := inNetNS(ns, func() error {
		var err error
		l, err = net.Listen("tcp", net.JoinHostPort(labIP, "0"))
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", ns, err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hi"))
			c.Close()
		}
	}()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	for i := range 20 {
		c, err := dialer(ns)(t.Context(), "tcp", net.JoinHostPort(labIP, port))
		if err != nil {
			t.Fatalf("dial %d into %s: %v", i, ns, err)
		}
		buf := make([]byte, 2)
		if _, err := c.Read(buf); err != nil || string(buf) != "hi" {
			t.Fatalf("read %q, %v", buf, err)
		}
		c.Close()
		if _, err := freePort("", labIP); err == nil {
			t.Fatalf("after dial %d the test's own namespace has the lab address: a thread was left in %s", i, ns)
		}
	}
	if p, err := freePort(ns, labIP); err != nil || p == 0 {
		t.Fatalf("free port in %s: %d, %v", ns, p, err)
	}
}
