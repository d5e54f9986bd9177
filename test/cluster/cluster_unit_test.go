package cluster

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

func TestWaitForGivesUpWhenProgramExits(t *testing.T) {
	p := shProcess(t, "echo dying; exit 7")
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	// The deadline is far beyond the test's own timeout: only the exit can
	// end this wait.
	err := waitFor(t.Context(), p, time.Hour, "never", func(context.Context) (bool, error) {
		return false, errors.New("not yet")
	})
	if err == nil || !strings.Contains(err.Error(), "sh exited") || !strings.Contains(err.Error(), "exit status 7") {
		t.Fatalf("waitFor = %v, want the program's exit", err)
	}
}

func TestWaitForReportsLastError(t *testing.T) {
	p := shProcess(t, "sleep 600")
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	err := waitFor(t.Context(), p, 300*time.Millisecond, "the impossible", func(context.Context) (bool, error) {
		return false, errors.New("connection refused")
	})
	if err == nil || !strings.Contains(err.Error(), "the impossible") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("waitFor = %v, want what was awaited and the last error", err)
	}
	calls := 0
	if err := waitFor(t.Context(), p, time.Hour, "third try", func(context.Context) (bool, error) {
		calls++
		return calls == 3, nil
	}); err != nil || calls != 3 {
		t.Fatalf("waitFor = %v after %d checks, want success on the third", err, calls)
	}
}

func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		http.Error(w, "[-]etcd failed", http.StatusInternalServerError)
	}))
	defer srv.Close()
	cp := &ControlPlane{}
	c := cp.httpClient(false)
	if body, err := get(t.Context(), c, srv.URL+"/healthz"); err != nil || body != "ok" {
		t.Fatalf("get healthz = %q, %v", body, err)
	}
	_, err := get(t.Context(), c, srv.URL+"/readyz")
	if err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "etcd failed") {
		t.Fatalf("get on a failing endpoint = %v, want status and body", err)
	}
}

func TestTokenKubeconfigFiles(t *testing.T) {
	ca, err := newCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	cp := &ControlPlane{Dir: t.TempDir(), APIServerURL: "https://198.51.100.10:6443", ca: ca}
	a1 := cp.TokenKubeconfig(t, "token-a")
	a2 := cp.TokenKubeconfig(t, "token-a")
	b := cp.TokenKubeconfig(t, "token-b")
	if a1 != a2 || a1 == b {
		t.Fatalf("paths %s %s %s: want one file per token", a1, a2, b)
	}
	if strings.Contains(a1, "token-a") {
		t.Fatalf("path %s leaks the token", a1)
	}
	st, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		t.Fatalf("kubeconfig mode %v readable by others", st.Mode())
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", b)
	if err != nil || cfg.BearerToken != "token-b" || cfg.Host != cp.APIServerURL {
		t.Fatalf("kubeconfig %s: %+v, %v", b, cfg, err)
	}
}

func TestServiceCIDRs(t *testing.T) {
	for bind, want := range map[string]string{
		"127.0.0.1":        ServiceCIDRv4 + "," + ServiceCIDRv6,
		"198.51.100.10":    ServiceCIDRv4 + "," + ServiceCIDRv6,
		"::1":              ServiceCIDRv6 + "," + ServiceCIDRv4,
		"2001:db8:100::10": ServiceCIDRv6 + "," + ServiceCIDRv4,
	} {
		if got := serviceCIDRs(bind); got != want {
			t.Errorf("serviceCIDRs(%s) = %s, want %s", bind, got, want)
		}
	}
}

func TestFreePortLoopback(t *testing.T) {
	seen := map[int]bool{}
	for range 5 {
		p, err := freePort("", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if p <= 0 || p > 65535 {
			t.Fatalf("port %d", p)
		}
		seen[p] = true
	}
	if len(seen) < 2 {
		t.Fatalf("kernel handed out one port five times: %v", seen)
	}
	// An address no interface here has (documentation range): bind fails
	// without a packet leaving.
	if _, err := freePort("", "203.0.113.1"); err == nil {
		t.Fatal("free port on an address this host does not have")
	}
}
